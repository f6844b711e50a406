"""`alt train` and `alt evaluate` end to end on a small generated world."""

import json
import subprocess
import sys

import pytest

from model import load_checkpoint, preset
from training.generate import generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_world(
        out, {"train": 1, "val": 0, "test": 1, "fewshot": 2, "zeroshot": 1}, seed=9, workers=2
    )
    return out


def alt(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_train_then_evaluate_with_alignment_quality(world, tmp_path):
    summary = alt(
        "train",
        "--preset",
        "tiny",
        "--train",
        world / "train.csv",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--out",
        tmp_path / "ckpt",
    )
    assert summary["classes"] == 24 and len(summary["loss"]) == 1
    # Eight world actions name no object or body part ("waving", "clapping", ...).
    assert summary["labels_naming_entities"] == 16
    result = alt(
        "evaluate",
        tmp_path / "ckpt",
        "--test",
        world / "test.csv",
        "--masks",
        world / "masks" / "test.npz",
    )
    assert result["n"] == 24 and result["top1"] <= result["top5"]
    per_entity = result["region_accuracy_per_entity"]
    names = json.loads((world / "world.json").read_text())["entities"]
    assert per_entity and set(per_entity) <= set(names)
    # Overall and balanced accuracy are both means of the per-entity accuracies.
    low, high = min(per_entity.values()), max(per_entity.values())
    assert low <= result["region_accuracy"] <= high
    assert low <= result["region_balanced_accuracy"] <= high
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())["alt"]
    assert config["name"] == "tiny" and config["merge_r"] == preset("tiny").merge_r
    labels = json.loads((tmp_path / "ckpt" / "labels.json").read_text())
    corpus = [
        e["name"] for e in json.loads((tmp_path / "ckpt" / "corpus.json").read_text())["entities"]
    ]
    assert len(labels) == 24 and {"ball", "box", "cup", "hand"} <= set(
        corpus
    )  # mined from labels + body parts


@pytest.mark.slow
def test_few_shot_regime_and_zero_shot_evaluation(world, tmp_path):
    summary = alt("train", "--preset", "tiny", "--train", world / "fewshot.csv", "--regime", "few-shot", "--shots", "1",
                  "--epochs", "1", "--out", tmp_path / "fs")  # fmt: skip
    assert summary["clips"] == 6 and summary["regime"] == "few-shot"
    refused = subprocess.run(
        [sys.executable, "-m", "cli.main", "train", "--preset", "tiny", "--train", str(world / "fewshot.csv"),
         "--label-map-steps", "5", "--out", str(tmp_path / "no")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode != 0 and "needs a preset with a label map" in refused.stderr
    result = alt(
        "evaluate", tmp_path / "fs", "--test", world / "zeroshot.csv", "--labels-from-test"
    )
    assert result["n"] == 6


@pytest.mark.slow
def test_build_default_quick_runs_the_whole_chain(tmp_path):
    """World -> CLIP pretraining -> ALT + baseline -> few-shot -> a loadable checkpoint."""
    out = tmp_path / "default"
    summary = alt("build-default", "--quick", "--out", out, "--work", tmp_path / "work")
    assert {"alt", "baseline", "few_shot"} <= set(summary)
    report = json.loads((out / "report.json").read_text())
    assert "2" in report["few_shot"]
    # The report is the shipped checkpoint's: evaluated again, it gives the same accuracy.
    again = alt("evaluate", out, "--test", tmp_path / "work" / "world" / "test.csv")
    assert again["top1"] == pytest.approx(report["alt"]["seen"]["top1"], abs=1e-4)
    assert again["n"] == report["alt"]["seen"]["n"]
    assert (tmp_path / "work" / "clip.pt").is_file() and len(
        list((out / "samples").glob("*.mp4"))
    ) == 6
    assert load_checkpoint(out).labels == report["seen"]

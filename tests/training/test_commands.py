"""`alt train` and `alt evaluate` end to end on a small generated world."""

import json
import subprocess
import sys

import pytest

from model import load_checkpoint, preset
from tests.conftest import DEFAULT_CHECKPOINT
from tests.fixtures import alt_here
from training.generate import generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_world(
        out, {"train": 1, "val": 0, "test": 1, "fewshot": 2, "zeroshot": 1}, seed=9, workers=2
    )
    return out


def alt(*args):
    """`alt ARGS` as a process of its own (training starts processes and sets torch's own
    state) -> the JSON it prints."""
    proc = run_alt(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def evaluate(*args):
    """`alt evaluate ARGS` in this process (its import of torch is most of a small run)."""
    ran = alt_here("evaluate", *args)
    assert ran.returncode == 0, ran.stderr[-3000:]
    return json.loads(ran.stdout)


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
    result = evaluate(
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
    result = evaluate(tmp_path / "fs", "--test", world / "zeroshot.csv", "--labels-from-test")
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
    again = evaluate(out, "--test", tmp_path / "work" / "world" / "test.csv")
    assert again["top1"] == pytest.approx(report["alt"]["seen"]["top1"], abs=1e-4)
    assert again["n"] == report["alt"]["seen"]["n"]
    assert (tmp_path / "work" / "clip.pt").is_file() and len(
        list((out / "samples").glob("*.mp4"))
    ) == 6
    assert load_checkpoint(out).labels == report["seen"]
    # The baseline trained beside it ships too, scored by the same command and flags.
    base = evaluate(tmp_path / "baseline", "--test", tmp_path / "work" / "world" / "test.csv")
    assert base["model"] == "baseline" and again["model"] == "alt"
    assert base["top1"] == pytest.approx(report["baseline"]["seen"]["top1"], abs=1e-4)
    for directory, kind in ((out, "ALT"), (tmp_path / "baseline", "baseline")):
        card = json.loads((directory / "config.json").read_text())["card"]
        assert "generated world" in card["domain"] and card["model"].startswith(kind)
    # The baseline alone, trained again beside that default from the CLIP it came from.
    again = alt("build-default", "--quick", "--baseline-only", "--out", out,
                "--work", tmp_path / "work", "--baseline-out", tmp_path / "b2")  # fmt: skip
    assert set(again) == {"baseline", "seconds"} and not (tmp_path / "b2" / "samples").exists()
    scored = evaluate(tmp_path / "b2", "--test", tmp_path / "work" / "world" / "test.csv")
    assert scored["model"] == "baseline"
    assert scored["top1"] == pytest.approx(again["baseline"]["seen"]["top1"], abs=1e-4)
    # Beside a default from another CLIP (the shipped one), it is refused before training.
    other = alt_here("build-default", "--quick", "--baseline-only", "--out", DEFAULT_CHECKPOINT,
                     "--work", tmp_path / "work", "--baseline-out", tmp_path / "b3")  # fmt: skip
    assert other.returncode != 0 and f"not the one {DEFAULT_CHECKPOINT} was trained" in other.stderr
    assert "Traceback" not in other.stderr and not (tmp_path / "b3").exists()


def run_alt(*args):
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.mark.slow
def test_a_recipe_with_overrides_trains_validates_and_keeps_the_best(world, tmp_path):
    summary = alt(
        "train", "--recipe", "world-demo", "--data-root", world.parent,
        "--set", f"data.train={world / 'train.csv'}", "--set", f"data.val={world / 'test.csv'}",
        "--set", "model.preset=tiny", "--set", "optim.epochs=2", "--set", "optim.batch_size=8",
        "--global-batch", "16", "--out", tmp_path / "run", "--workers", "1",
    )  # fmt: skip
    assert summary["accum_steps"] == 2 and summary["global_batch"] == 16
    assert summary["job"]["preset"] == "tiny" and summary["job"]["epochs"] == 2
    assert [v["epoch"] for v in summary["validation"]] == [1, 2]
    assert summary["best"]["top1"] == max(v["top1"] for v in summary["validation"])
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    assert list((tmp_path / "run" / "tensorboard").iterdir())
    # The shipped recipe's cache folder (relative to the data root) holds the decoded frames.
    assert list((world.parent / "world" / "frames").glob("*.npy")) or summary["job"]["cache_dir"]


@pytest.mark.slow
def test_bad_recipes_and_bad_data_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nlrr = 1\n")
    no_label = tmp_path / "no_label.csv"
    no_label.write_text("path,action\na.mp4,x\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("path,label\n")
    typo = tmp_path / "typo.toml"
    typo.write_text('[optim]\nepochs = "many"\n')
    cases = [
        (["train", "--recipe", bad, "--train", empty, "--out", tmp_path / "o"],
         "unknown field 'lrr'"),
        (["train", "--recipe", typo, "--train", empty, "--out", tmp_path / "o"],
         "epochs must be a whole number"),
        (["train", "--recipe", "nope"], "no recipe 'nope'"),
        (["train", "--train", no_label, "--out", tmp_path / "o"], "needs the columns path,label"),
        (["train", "--train", empty, "--out", tmp_path / "o"], "lists no video"),
        (["train", "--out", tmp_path / "o"], "train is required"),
        (["train", "--train", tmp_path / "absent.csv", "--out", tmp_path / "o"],
         "annotation file not found"),
        (["train", "--train", empty, "--out", tmp_path / "o", "--set", "lr"],
         "expected field=value"),
    ]  # fmt: skip
    for args, message in cases:
        proc = run_alt(*args)
        assert proc.returncode != 0, args
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_labels_outside_the_training_set_in_validation_are_refused(world, tmp_path):
    proc = run_alt("train", "--preset", "tiny", "--train", world / "test.csv", "--val",
                   world / "zeroshot.csv", "--out", tmp_path / "o", "--epochs", "1")  # fmt: skip
    assert proc.returncode != 0 and "labels the training set lacks" in proc.stderr


def test_shipped_recipes_read_as_jobs():
    from training.commands import EvalJob, EvalSet, TrainJob
    from training.recipe import RECIPES, build, flatten, read_recipe

    names = sorted(p.stem for p in RECIPES.glob("*.toml"))
    assert names == ["few-shot-b16", "k400-b16-supervised", "world-demo",
                     "zero-shot-k400-to-ucf-hmdb"]  # fmt: skip
    k400 = TrainJob.resolve("k400-b16-supervised", ["optim.lr=1e-5"], {})
    assert (k400.preset, k400.epochs, k400.global_batch, k400.lr) == ("B/16", 30, 256, 1e-5)
    assert k400.test_views == (3, 1) and k400.crop_scale == (0.4, 1.0)
    few = TrainJob.resolve("few-shot-b16", ["data.shots=8"], {"epochs": 3})
    assert (few.regime, few.shots, few.epochs) == ("few-shot", 8, 3)
    path = RECIPES / "zero-shot-k400-to-ucf-hmdb.toml"
    job = build(EvalJob, flatten(read_recipe(path), ("evaluate",), "t"), "t")
    sets = [build(EvalSet, s, "t") for s in job.sets]
    assert [(s.name, len(s.tests)) for s in sets] == [("UCF-101", 3), ("HMDB-51", 3)]

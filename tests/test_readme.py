"""The README's example answer is what the shipped default answers."""

import json
import re
from pathlib import Path

import pytest

from server.offline import recognize_file
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_example_answer_is_the_shipped_defaults():
    text = (ROOT / "README.md").read_text()
    match = re.search(r"samples/kicking_a_ball\.mp4 --top-k 3`.*?```json\n(.*?)\n```", text, re.S)
    assert match, "the example answer is missing from the README"
    shown = json.loads(match.group(1))
    sample = ROOT / "checkpoints" / "default" / "samples" / "kicking_a_ball.mp4"
    answer = recognize_file(Settings(), sample, None, 3, "entities")
    assert [a["label"] for a in answer["actions"]] == [a["label"] for a in shown["actions"]]
    for got, want in zip(answer["actions"], shown["actions"]):
        assert got["score"] == pytest.approx(want["score"], abs=1e-5)
    # The README shows the strongest entities only: they must be the answer's first ones.
    assert len(shown["entities"]) >= 3
    assert [(e["name"], e["frames"]) for e in answer["entities"][: len(shown["entities"])]] == [
        (e["name"], e["frames"]) for e in shown["entities"]
    ]
    assert answer["video"] == shown["video"] and answer["model"] == shown["model"]
    assert set(answer) == set(shown)

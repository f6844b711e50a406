"""Shared fixtures: the `tiny` preset keeps the suite fast on two CPU cores."""

from __future__ import annotations

import os
import time
from pathlib import Path

# pytest-xdist's workers share the machine's cores: one torch thread per process (the
# servers and commands a test starts inherit it), or each process's OpenMP threads spin
# against the others'.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from model import build_alt, preset
from tests import groups
from tests.fixtures import save_tiny_checkpoint
from tests.videos import moving_square_video


@pytest.fixture(scope="session")
def tiny_config():
    return preset("tiny")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_config):
    """A randomly initialized tiny ALT and its body-part corpus (read-only: do not train it)."""
    torch.manual_seed(0)
    model, corpus = build_alt(tiny_config)
    return model.eval(), corpus


@pytest.fixture
def tiny_frames(tiny_config):
    g = torch.Generator().manual_seed(1)
    s = tiny_config.image_size
    return torch.randn(2, tiny_config.frames, 3, s, s, generator=g)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A saved tiny ALT checkpoint with random weights and a small entity corpus."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-random")


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    """Four real mp4 files of different lengths."""
    d = tmp_path_factory.mktemp("videos")
    for i in range(4):
        moving_square_video(d / f"clip{i}.mp4", frames=30 + 5 * i, seed=i)
    return d


@pytest.fixture(scope="session")
def clip_weights(tmp_path_factory) -> Path:
    """CLIP weights saved as users save open_clip state dicts (random: nothing downloads)."""
    from model.clip import create_clip

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "tiny_clip.pt"
    torch.save(create_clip("ALT-tiny").state_dict(), path)
    return path


DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "default"


def write_world_videos(folder: Path, n: int, seed: int = 900_000) -> list[tuple[Path, str]]:
    """`n` fresh clips of the shipped default's generated world, as mp4, with their action."""
    import json

    from media import write_video
    from training.generate import render_clip

    actions = json.loads((DEFAULT_CHECKPOINT / "labels.json").read_text())
    out = []
    for i in range(n):
        action = actions[(i * 7) % len(actions)]
        frames, _, _ = render_clip(action, seed + i)
        path = folder / f"{i:03d}.mp4"
        write_video(path, frames)
        out.append((path, action))
    return out


@pytest.fixture(scope="session")
def world_videos(tmp_path_factory) -> list[Path]:
    """Six real mp4 clips of the shipped default's world (in a folder of their own)."""
    return [p for p, _ in write_world_videos(tmp_path_factory.mktemp("world"), 6)]


@pytest.hookimpl(tryfirst=True)  # before `-m` selects
def pytest_collection_modifyitems(config, items):
    root = Path(__file__).resolve().parents[1]
    for item in items:
        path = Path(str(item.fspath)).resolve().relative_to(root).as_posix()
        for group, files in groups.GROUPS.items():  # tests/groups.py: run apart by make test
            if path in files:
                item.add_marker(getattr(pytest.mark, group))


def pytest_collection_finish(session):
    """`make test` starts the Ray run beside the first run: it imports and collects its
    files at once, then waits here until the first run has ended (ALT_TESTS_AFTER names the
    file whose existence says so), so that no cluster shares the CPU with the workers."""
    flag = os.environ.get("ALT_TESTS_AFTER")
    while flag and not os.path.exists(flag):
        time.sleep(0.2)

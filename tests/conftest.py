"""Shared fixtures: the `tiny` preset keeps the suite fast on two CPU cores."""

from __future__ import annotations

import pytest
import torch

from model import build_alt, preset


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

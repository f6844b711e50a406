"""The serving contract: one meta format, one label head, for every runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model import load_checkpoint
from model.contract import ModelMeta, label_head


def test_meta_round_trips_through_json_and_names_what_is_missing(tiny_checkpoint):
    meta = load_checkpoint(tiny_checkpoint).meta("v1", context_length=77)
    again = ModelMeta.from_json(json.loads(json.dumps(meta.to_json())))
    assert again == meta and again.grid == meta.grid and isinstance(again.entity_names, tuple)
    data = meta.to_json()
    del data["frames"], data["logit_scale"]
    with pytest.raises(ValueError, match="frames, logit_scale"):
        ModelMeta.from_json(data)


@pytest.mark.parametrize("with_map", [False, True])
def test_the_numpy_label_head_equals_alts(tiny_checkpoint, with_map):
    alt = load_checkpoint(tiny_checkpoint).model
    if with_map:
        torch.manual_seed(0)
        alt.label_proj = torch.nn.Linear(alt.dim, alt.dim)
    labels, templates = ["juggling", "surfing", "knitting"], alt.config.label_templates
    prompts = [t.format(label) for label in labels for t in templates]
    with torch.no_grad():
        feats = alt.encode_strings(prompts).reshape(len(labels), len(templates), -1).numpy()
        want = alt.encode_labels(labels).numpy()
        label_map = (
            (alt.label_proj.weight.numpy(), alt.label_proj.bias.numpy()) if with_map else None
        )
    got = label_head(feats, label_map)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert with_map == (np.abs(got - label_head(feats)).max() > 1e-3)

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import ALTConfig, CheckpointError, build_alt, load_checkpoint, save_checkpoint
from model.clip import create_clip
from model.vit import region_forward

LABELS = ["waving", "clapping", "kicking a ball"]


@pytest.fixture
def saved(tmp_path, tiny_config):
    torch.manual_seed(3)
    model, corpus = build_alt(tiny_config.replace(alpha_init=0.3, label_proj=True))
    torch.nn.init.normal_(model.adapter.proj.weight, std=0.1)
    torch.nn.init.normal_(model.label_proj.bias, std=0.1)
    model.eval()
    save_checkpoint(tmp_path / "ckpt", model, corpus, LABELS)
    return tmp_path / "ckpt", model, corpus


def test_round_trip_is_bit_identical(saved, tiny_frames):
    directory, model, corpus = saved
    bundle = load_checkpoint(directory)
    assert bundle.labels == LABELS
    assert bundle.corpus.names == corpus.names
    assert bundle.model.config == model.config
    with torch.no_grad():
        a, b = (
            model.encode_video(tiny_frames, track_source=True),
            bundle.model.encode_video(tiny_frames, track_source=True),
        )
        la, lb = model.encode_labels(LABELS), bundle.model.encode_labels(LABELS)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert torch.equal(la, lb)


def test_missing_tensor_is_named(saved):
    directory, _, _ = saved
    state = load_file(str(directory / "model.safetensors"))
    del state["adapter.proj.weight"]
    save_file(state, str(directory / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing tensors \['adapter.proj.weight'\]"):
        load_checkpoint(directory)


def test_unexpected_tensor_is_named(saved):
    directory, _, _ = saved
    state = load_file(str(directory / "model.safetensors"))
    state["adapter.surprise"] = torch.zeros(3)
    save_file(state, str(directory / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"unexpected tensors \['adapter.surprise'\]"):
        load_checkpoint(directory)


def test_wrong_shape_and_missing_files_are_errors(saved):
    directory, _, _ = saved
    state = load_file(str(directory / "model.safetensors"))
    state["alpha"] = torch.zeros(2)
    save_file(state, str(directory / "model.safetensors"))
    with pytest.raises(CheckpointError, match="alpha"):
        load_checkpoint(directory)
    (directory / "labels.json").unlink()
    with pytest.raises(CheckpointError, match="labels.json is missing"):
        load_checkpoint(directory)
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_checkpoint(directory / "nowhere")


def test_config_json_round_trip_unknown_and_retired_fields(tiny_config):
    cfg = tiny_config.replace(merge_schedule=(1, 2, 3, 4), label_templates=("x {}",))
    data = json.loads(json.dumps(cfg.to_dict()))
    assert ALTConfig.from_dict(data) == cfg
    # Checkpoints of earlier versions store retired fields switched off: they load ...
    assert (
        ALTConfig.from_dict({**data, "temporal_branch_layers": 0, "merge_inflection": 0.0}) == cfg
    )
    # ... switched on, they are refused by name.
    with pytest.raises(ValueError, match="adapter_frame_tokens"):
        ALTConfig.from_dict({**data, "adapter_frame_tokens": True})
    with pytest.raises(ValueError, match="bogus"):
        ALTConfig.from_dict({**data, "bogus": 1})


def test_alt_from_a_local_clip_weights_file(tmp_path, tiny_config, tiny_frames):
    torch.manual_seed(11)
    reference = create_clip("ALT-tiny").eval()
    path = tmp_path / "clip-tiny.pt"
    torch.save(reference.state_dict(), path)
    model, _ = build_alt(tiny_config.replace(merge_r=0, prop_attn=False), pretrained=str(path))
    model.eval()
    images = tiny_frames.flatten(0, 1)
    with torch.no_grad():
        ours = region_forward(model.clip.visual, images, model.plan, prop_attn=False).cls
        theirs = reference.encode_image(images)
        fresh = create_clip("ALT-tiny").eval().encode_image(images)
    assert (ours - theirs).abs().max().item() <= 1e-5
    assert (fresh - theirs).abs().max().item() > 1e-3  # the file, not the seed, made them equal


def test_missing_clip_weights_file_is_a_clear_error(tiny_config):
    with pytest.raises(FileNotFoundError, match="not found"):
        build_alt(tiny_config, pretrained="/no/such/clip.pt")


def test_a_baseline_checkpoint_loads_only_where_asked_and_scores_the_same(
    tmp_path, tiny_config, tiny_frames
):
    from training.baseline import TemporalBaseline

    torch.manual_seed(4)
    model, corpus = build_alt(tiny_config.replace(label_proj=True))
    base = TemporalBaseline(model).eval()
    torch.nn.init.normal_(base.out.weight, std=0.1)  # starts at zero: make it count
    save_checkpoint(tmp_path / "b", model, corpus, LABELS, head=base.head(), card={"model": "b"})
    with pytest.raises(CheckpointError, match="holds a baseline model .*serve an ALT"):
        load_checkpoint(tmp_path / "b")
    bundle = load_checkpoint(tmp_path / "b", with_head=True)
    again = TemporalBaseline.from_bundle(bundle)
    x = model.normalize(tiny_frames)
    with torch.no_grad():
        torch.testing.assert_close(again.video_embedding(x), base.video_embedding(x))
        assert not torch.allclose(again.video_embedding(x), model.encode_video(x).embedding)
    assert bundle.card == {"model": "b"}


def test_the_card_does_not_change_the_models_fingerprint(saved):
    from server.library.fingerprint import digest_of

    directory = saved[0]
    before = digest_of(directory)
    top = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**top, "card": {"domain": "x"}}))
    assert digest_of(directory) == before
    top["alt"]["tau"] = top["alt"]["tau"] * 2  # what the space depends on still counts
    (directory / "config.json").write_text(json.dumps(top, indent=2) + "\n")
    assert digest_of(directory) != before

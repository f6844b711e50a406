"""`alt init`'s model side: CLIP weights from a file become an ALT that is CLIP zero-shot."""

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from media import decode_clip
from model import catalog, load_checkpoint, save_checkpoint
from model.from_clip import INIT_LABEL_TEMPLATES, InitError, init_checkpoint
from tests.videos import moving_square_video


@pytest.fixture(scope="module")
def weights(clip_weights):
    return clip_weights


@pytest.fixture(scope="module")
def initialized(weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("init")
    init_checkpoint(out / "fp32", "tiny", str(weights), merge_r=0)
    init_checkpoint(out / "fp16", "tiny", str(weights), dtype="fp16", merge_r=0)
    return out


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = moving_square_video(tmp_path_factory.mktemp("v") / "v.mp4", frames=40, size=(64, 80))
    return decode_clip(path.read_bytes(), 4, 64)


def test_the_initialized_model_is_clip_zero_shot(initialized, weights, video):
    bundle = load_checkpoint(initialized / "fp32")
    alt = bundle.model
    frames, _ = video
    x = alt.normalize(torch.from_numpy(frames))  # (1, T, 3, S, S)
    reference = open_clip.create_model("ALT-tiny", pretrained=str(weights)).eval()
    with torch.no_grad():
        got = alt.encode_video(x).embedding[0]
        per_frame = reference.encode_image(x[0])  # (T, D), open_clip's own forward
        expected = F.normalize(per_frame.mean(0), dim=-1)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
        # Labels: the mean over the templates of open_clip's normalized text features.
        labels = bundle.labels[:20]
        tok = open_clip.get_tokenizer("ALT-tiny")
        feats = [
            F.normalize(reference.encode_text(tok([t.format(lbl) for t in INIT_LABEL_TEMPLATES])), dim=-1).mean(0)
            for lbl in labels
        ]  # fmt: skip
        clip_labels = F.normalize(torch.stack(feats), dim=-1)
        clip_scores = reference.logit_scale.exp() * expected @ clip_labels.T
        alt_scores = alt.logits(got[None], alt.encode_labels(labels))[0]
    torch.testing.assert_close(alt_scores, clip_scores, atol=1e-4, rtol=0)


def test_the_checkpoint_holds_kinetics_the_real_world_corpus_and_its_label_embeddings(
    initialized, tmp_path
):
    bundle = load_checkpoint(initialized / "fp32")
    assert bundle.labels == catalog.label_set("kinetics400") and len(bundle.labels) == 400
    names = bundle.corpus.names
    assert {"bicycle", "kitchen", "hand", "helmet", "guitar"} <= set(names)
    assert len(names) == len(catalog.real_world_entities()) and len(set(names)) == len(names)
    assert "real videos" in bundle.card["domain"] and bundle.card["label_set"] == "kinetics400"
    with torch.no_grad():
        fresh = bundle.model.encode_labels(bundle.labels)
    torch.testing.assert_close(bundle.label_embeddings, fresh, atol=1e-5, rtol=0)
    # Round trip: saved again and loaded strictly, every tensor is the same.
    save_checkpoint(tmp_path / "again", bundle.model, bundle.corpus, bundle.labels,
                    card=bundle.card, label_embeddings=bundle.label_embeddings)  # fmt: skip
    again = load_checkpoint(tmp_path / "again")
    for (k, a), (k2, b) in zip(bundle.model.state_dict().items(), again.model.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    assert again.card == bundle.card and again.corpus.names == names


def test_fp16_weights_are_half_the_size_and_answer_the_same_top5(initialized, video):
    sizes = {d: (initialized / d / "model.safetensors").stat().st_size for d in ("fp32", "fp16")}
    assert sizes["fp16"] < 0.55 * sizes["fp32"]
    frames, _ = video
    top5 = {}
    for d in ("fp32", "fp16"):
        bundle = load_checkpoint(initialized / d)
        alt = bundle.model
        with torch.no_grad():
            emb = alt.encode_video(alt.normalize(torch.from_numpy(frames))).embedding
            scores = alt.logits(emb, bundle.label_embeddings)[0]
        top5[d] = scores.topk(5).indices.tolist()
        assert next(alt.parameters()).dtype == torch.float32  # loaded into fp32 either way
    assert top5["fp16"] == top5["fp32"]


def test_weights_of_another_architecture_are_named(weights, tmp_path):
    with pytest.raises(InitError, match=r"do not fit preset demo .*look like preset tiny"):
        init_checkpoint(tmp_path / "x", "demo", str(weights))
    with pytest.raises(InitError, match="unknown preset"):
        init_checkpoint(tmp_path / "x", "B/64", str(weights))


def test_text_encoding_cut_at_the_longest_prompt_equals_open_clip(initialized):
    alt = load_checkpoint(initialized / "fp32").model
    tokens = alt.tokenize(["a photo of a person doing abseiling.", "a", "x " * 30])
    with torch.no_grad():
        full = alt.clip.encode_text(tokens, normalize=True)
        cut = alt.encode_text(tokens)
    np.testing.assert_allclose(cut.numpy(), full.numpy(), atol=1e-6)

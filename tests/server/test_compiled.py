"""The served forward: compiled per batch bucket, and bf16 weights cast once."""

from pathlib import Path

import numpy as np
import pytest
import torch

from media import decode_clip, write_video
from server.engine.backends.torch_backend import TorchBackend
from training.generate import render_clip

DEFAULT = Path(__file__).resolve().parents[2] / "checkpoints" / "default"


def _clips(video_dir, n: int, frames: int, size: int) -> np.ndarray:
    return np.concatenate(
        [decode_clip((video_dir / f"clip{i % 4}.mp4").read_bytes(), frames, size)[0] for i in range(n)]
    )  # fmt: skip


def test_the_video_forward_has_no_graph_break(tiny_checkpoint):
    backend = TorchBackend(tiny_checkpoint)
    x = torch.zeros(2, backend.info.frames, 3, backend.info.image_size, backend.info.image_size,
                    dtype=torch.uint8)  # fmt: skip
    with torch.inference_mode():
        explained = torch._dynamo.explain(backend._forward)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons


@pytest.mark.slow
def test_compiled_buckets_answer_as_eager_and_padding_changes_nothing(tiny_checkpoint, video_dir):
    eager = TorchBackend(tiny_checkpoint)
    compiled = TorchBackend(tiny_checkpoint, buckets=(1, 4))
    compiled.warmup(4)
    info = eager.info
    clips = _clips(video_dir, 3, info.frames, info.image_size)  # real decoded videos
    assert compiled.bucket(3) == 4  # three clips run padded to the bucket of four
    want, got = eager.encode_video(clips, False), compiled.encode_video(clips, False)
    assert len(got) == 3
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.embedding, w.embedding, atol=1e-4)
        assert g.entity_ids.tolist() == w.entity_ids.tolist()
        assert (g.region_entities == w.region_entities).all()
    labels = eager.encode_labels(
        ["waving", "clapping", "jumping", "kicking a ball", "drinking", "x"]
    )
    for w, g in zip(want, got):
        assert (
            np.argsort(-(w.embedding @ labels.T))[:5].tolist()
            == np.argsort(-(g.embedding @ labels.T))[:5].tolist()
        )
    # Each clip alone (bucket 1) answers as it does inside the padded batch.
    for i, g in enumerate(got):
        (alone,) = compiled.encode_video(clips[i : i + 1], False)
        np.testing.assert_allclose(alone.embedding, g.embedding, atol=1e-5)
        assert alone.entity_ids.tolist() == g.entity_ids.tolist()


def test_bf16_weights_cast_once_give_the_fp32_top5_up_to_near_ties_on_real_videos(tmp_path):
    fp32, bf16 = TorchBackend(DEFAULT), TorchBackend(DEFAULT, dtype="bf16")
    assert next(bf16.model.clip.parameters()).dtype == torch.bfloat16
    assert bf16.model.entities.dtype == torch.float32  # alignment stays in fp32
    labels = list(fp32.info.default_labels)
    clips = []
    for i, action in enumerate(labels[:8]):
        frames, _, _ = render_clip(action, 700_000 + i)
        write_video(tmp_path / f"{i}.mp4", frames)
        clips.append(decode_clip((tmp_path / f"{i}.mp4").read_bytes(), 8, 96)[0])
    clips = np.concatenate(clips)
    top, scores = {}, {}
    for name, backend in (("fp32", fp32), ("bf16", bf16)):
        emb = np.stack([r.embedding for r in backend.encode_video(clips, False)])
        scores[name] = emb @ backend.encode_labels(labels).T
        top[name] = np.argsort(-scores[name], axis=1)[:, :5].tolist()
    # bf16 moves each cosine by at most `delta`; the same top-1, and the same five labels
    # except where a label just outside fp32's five is within 2 * delta of its fifth (the
    # only way a change of at most delta can swap them across rank 5).
    delta = float(np.abs(scores["bf16"] - scores["fp32"]).max())
    assert delta < 0.05  # 8 bits of mantissa: cosines move by hundredths (0.022 measured)
    assert [t[0] for t in top["bf16"]] == [t[0] for t in top["fp32"]]
    for s, f, b in zip(scores["fp32"], top["fp32"], top["bf16"]):
        fifth = s[f[4]]
        assert all(abs(s[label] - fifth) <= 2 * delta for label in set(f) ^ set(b)), (f, b)


@pytest.mark.gpu
def test_cuda_graph_buckets_answer_as_eager_on_a_gpu(tiny_checkpoint, video_dir):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    eager = TorchBackend(tiny_checkpoint, device="cuda")
    graphs = TorchBackend(tiny_checkpoint, device="cuda", buckets=(1, 2, 4))  # CUDA graphs
    graphs.warmup(4)
    info = eager.info
    clips = _clips(video_dir, 3, info.frames, info.image_size)
    for w, g in zip(eager.encode_video(clips, False), graphs.encode_video(clips, False)):
        np.testing.assert_allclose(g.embedding, w.embedding, atol=1e-4)
        assert g.entity_ids.tolist() == w.entity_ids.tolist()

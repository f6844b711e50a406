"""Model speed: ALT with token merging r in {0, 8, 13} against plain CLIP frame mean pooling,
fp32 / bf16 (/ fp16 on GPU) / ONNX Runtime, batch 1 and 8, with GFLOPs and % of the
machine's measured matmul peak.

    python -m benchmarks.model                       # B/16, random weights, 8 x 224
    python -m benchmarks.model --preset tiny --quick # smoke run
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from model import build_alt, preset, save_checkpoint
from model.flops import count

from .common import machine, matmul_peak_gflops, median_seconds, table

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def clip_mean_pool_macs(cfg) -> int:
    """encode_image on every frame: the unmerged tower (its all-token projection is <0.5%)."""
    c = count(cfg.replace(merge_r=0), num_entities=1)
    return c.frames * c.vision_per_frame


def run(preset_name: str, batches: list[int], rs: list[int], dtypes: list[str], device: str, reps: int,
        onnx_rs: list[int]) -> str:  # fmt: skip
    torch.manual_seed(0)
    cfg = preset(preset_name)
    alt, corpus = build_alt(cfg)
    alt = alt.to(device).eval()
    peak = {name: matmul_peak_gflops(device, DTYPES[name] or torch.float32) for name in dtypes}
    share_r = cfg.merge_r if cfg.merge_r in rs else max(rs)  # the preset's own schedule
    models = {}
    for r in rs:  # same weights, different merge schedules
        model, _ = build_alt(cfg.replace(merge_r=r))
        model.load_state_dict(alt.state_dict())
        model.entities = alt.entities.cpu()
        models[r] = model.to(device).eval()
    rows, shares = [], []
    for b in batches:
        frames = torch.randn(b, cfg.frames, 3, cfg.image_size, cfg.image_size, device=device)
        for dname in dtypes:

            def ctx(dname=dname):
                kind = device.split(":")[0]
                return torch.autocast(kind, dtype=DTYPES[dname]) if DTYPES[dname] else nullcontext()

            def clip_pool():
                with torch.inference_mode(), ctx():
                    alt.clip.encode_image(frames.flatten(0, 1)).reshape(b, cfg.frames, -1).mean(1)

            secs = median_seconds(clip_pool, device, reps=reps)
            macs = clip_mean_pool_macs(cfg)
            rows.append(
                [
                    "CLIP mean pooling",
                    dname,
                    b,
                    1000 * secs / b,
                    b / secs,
                    macs / 1e9,
                    2 * macs * b / secs / 1e9 / peak[dname] * 100,
                ]
            )
            for r, model in models.items():

                def forward(model=model):
                    with torch.inference_mode(), ctx():
                        model.encode_video(frames)

                secs = median_seconds(forward, device, reps=reps)
                macs = count(model.config, len(corpus)).per_view
                rows.append(
                    [
                        f"ALT r={r}",
                        dname,
                        b,
                        1000 * secs / b,
                        b / secs,
                        macs / 1e9,
                        2 * macs * b / secs / 1e9 / peak[dname] * 100,
                    ]
                )
                if r == share_r and dname == "fp32":

                    def backbone(model=model):
                        with torch.inference_mode():
                            model.encode_frames(frames)

                    shares.append((b, 1 - median_seconds(backbone, device, reps=reps) / secs))
        if onnx_rs and device == "cpu":
            rows.extend(onnx_rows(alt, corpus, cfg, b, reps, peak["fp32"], onnx_rs))
    out = [f"Machine: {machine()}",
           "Peak (measured 2048^3 matmul): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()),
           "", table(["model", "dtype", "batch", "ms/clip", "clips/s", "GFLOPs/clip", "% of peak"], rows), ""]  # fmt: skip
    for b, share in shares:
        out.append(
            f"alignment + adapter share of ALT r={share_r} time, batch {b}: {100 * share:.1f}%"
        )
    return "\n".join(out)


def onnx_rows(alt, corpus, cfg, b, reps, peak, rs) -> list[list]:
    import onnxruntime as ort

    from export.onnx_export import export_onnx

    rows = []
    for r in rs:
        with tempfile.TemporaryDirectory() as d:
            model, _ = build_alt(cfg.replace(merge_r=r))
            model.load_state_dict(alt.state_dict())
            save_checkpoint(Path(d) / "ckpt", model, corpus, ["a"])
            export_onnx(Path(d) / "ckpt", Path(d) / "onnx")
            sess = ort.InferenceSession(
                str(Path(d) / "onnx" / "video.onnx"), providers=["CPUExecutionProvider"]
            )
            frames = np.random.default_rng(0).integers(
                0, 255, (b, cfg.frames, 3, cfg.image_size, cfg.image_size), dtype=np.uint8
            )
            secs = median_seconds(lambda sess=sess: sess.run(None, {"frames": frames}), reps=reps)
            macs = count(model.config, len(corpus)).per_view
            rows.append(
                [
                    f"ALT r={r} (ONNX Runtime)",
                    "fp32",
                    b,
                    1000 * secs / b,
                    b / secs,
                    macs / 1e9,
                    2 * macs * b / secs / 1e9 / peak * 100,
                ]
            )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="B/16")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--rs", type=int, nargs="+", default=[0, 8, 13])
    p.add_argument("--dtypes", nargs="+", default=None, help="default: fp32 bf16 (+ fp16 on cuda)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--onnx-rs",
        dest="onnx_rs",
        type=int,
        nargs="*",
        default=[0, 8],
        help="r values to time in ONNX Runtime (CPU)",
    )
    p.add_argument("--no-onnx", dest="onnx_rs", action="store_const", const=[])
    p.add_argument("--quick", action="store_true", help="batch 1, one rep: a smoke run")
    a = p.parse_args()
    dtypes = a.dtypes or (
        ["fp32", "bf16", "fp16"] if a.device.startswith("cuda") else ["fp32", "bf16"]
    )
    if a.quick:
        a.batches, a.reps = [1], 1
    print(run(a.preset, a.batches, a.rs, dtypes, a.device, a.reps, a.onnx_rs))


if __name__ == "__main__":
    main()

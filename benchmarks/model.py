"""Model speed: ALT with token merging r in {0, 8, 13} against plain CLIP frame mean pooling,
fp32 / bf16 (/ fp16 on GPU; weights cast once, as served) / ONNX Runtime, batch 1 and 8,
eager and (with --compile) compiled, aligning to a corpus of --entities entities, with
GFLOPs and % of the machine's measured matmul peak.

    python -m benchmarks.model                       # B/16, random weights, 8 x 224
    python -m benchmarks.model --preset tiny --quick # smoke run
"""

from __future__ import annotations

import argparse
import tempfile
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


def _variant(alt, cfg, r: int, dtype: str, device: str, entities: torch.Tensor):
    """The same weights with merge schedule `r`, cast once to `dtype` as the server serves."""
    model, _ = build_alt(cfg.replace(merge_r=r))
    model.load_state_dict(alt.state_dict())
    model.entities = entities
    model = model.to(device).eval()
    return model.cast_weights(DTYPES[dtype]) if DTYPES[dtype] else model


def run(preset_name: str, batches: list[int], rs: list[int], dtypes: list[str], device: str, reps: int,
        onnx_rs: list[int], entities: int = 1000, compiled: bool = False,
        autocast: bool = False, peak_n: int = 2048) -> str:  # fmt: skip
    """Interleaved per batch: CLIP mean pooling and ALT at each r, each dtype (weights cast
    once, as served), eager and with `compiled` also torch.compile'd (static shapes)."""
    torch.manual_seed(0)
    cfg = preset(preset_name)
    alt, corpus = build_alt(cfg)
    # A corpus of realistic size (the real-world one holds ~700): random unit vectors.
    extra = torch.nn.functional.normalize(
        torch.randn(max(0, entities - len(corpus)), alt.dim), dim=-1
    )
    bank = torch.cat([alt.entities, extra]).to(device)
    peak = {name: matmul_peak_gflops(device, DTYPES[name] or torch.float32, peak_n)
            for name in dtypes}  # fmt: skip
    share_r = cfg.merge_r if cfg.merge_r in rs else max(rs)  # the preset's own schedule
    rows, shares = [], []
    modes = ["eager", "compiled"] if compiled else ["eager"]
    for b in batches:
        frames = torch.randint(0, 255, (b, cfg.frames, 3, cfg.image_size, cfg.image_size),
                               dtype=torch.uint8, device=device)  # fmt: skip
        for dname in dtypes:
            models = {r: _variant(alt, cfg, r, dname, device, bank) for r in rs}
            base = models[rs[0]]
            for mode in modes + (["autocast"] if autocast and DTYPES[dname] else []):
                wrap = torch.compile if mode == "compiled" else (lambda f: f)
                tag = "" if mode == "eager" else f" {mode}"
                if mode == "autocast":  # fp32 weights re-cast inside every forward
                    models = {r: _variant(alt, cfg, r, "fp32", device, bank) for r in rs}
                    base = models[rs[0]]
                cast = torch.autocast(device.split(":")[0], dtype=DTYPES[dname],
                                      enabled=mode == "autocast")  # fmt: skip

                def pool(x, base=base):
                    return (
                        base.clip.encode_image(base.normalize(x).flatten(0, 1))
                        .reshape(b, cfg.frames, -1)
                        .mean(1)
                    )

                pool_fn = wrap(pool)

                def clip_pool(pool_fn=pool_fn, cast=cast):
                    with torch.inference_mode(), cast:
                        pool_fn(frames)

                secs = median_seconds(clip_pool, device, reps=reps)
                macs = clip_mean_pool_macs(cfg)
                rows.append([f"CLIP mean pooling{tag}", dname, b, 1000 * secs / b, b / secs, macs / 1e9,
                             2 * macs * b / secs / 1e9 / peak[dname] * 100])  # fmt: skip
                for r, model in models.items():

                    def encode(x, model=model):
                        out = model.encode_video(model.normalize(x))
                        return out.embedding, out.entity_ids

                    fn = wrap(encode)

                    def forward(fn=fn, cast=cast):
                        with torch.inference_mode(), cast:
                            fn(frames)

                    secs = median_seconds(forward, device, reps=reps)
                    macs = count(model.config, len(bank)).per_view
                    rows.append([f"ALT r={r}{tag}", dname, b, 1000 * secs / b, b / secs, macs / 1e9,
                                 2 * macs * b / secs / 1e9 / peak[dname] * 100])  # fmt: skip
                    if r == share_r and mode == "eager":
                        # Timed alone on the tower's stored output: what ALT adds to CLIP.
                        with torch.inference_mode():
                            tower = model.encode_frames(model.normalize(frames))

                        def head(model=model, tower=tower):
                            with torch.inference_mode():
                                model.align_and_adapt(tower, b, cfg.frames)

                        shares.append((b, dname, median_seconds(head, device, reps=reps) / secs))
        if onnx_rs:
            rows.extend(onnx_rows(alt, corpus, cfg, b, reps, peak["fp32"], onnx_rs, device))
    out = [f"Machine: {machine()}",
           "Peak (measured 2048^3 matmul): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()),
           f"Entity corpus: {len(bank)} entities; low-precision rows cast the weights once (as served)",
           "", table(["model", "dtype", "batch", "ms/clip", "clips/s", "GFLOPs/clip", "% of peak"], rows), ""]  # fmt: skip
    for b, dname, share in shares:
        out.append(
            f"alignment + adapter share of ALT r={share_r} time, {dname}, batch {b}: {100 * share:.1f}%"
        )
    return "\n".join(out)


def onnx_rows(alt, corpus, cfg, b, reps, peak, rs, device: str = "cpu") -> list[list]:
    """ONNX Runtime on the CPU, or with the CUDA execution provider (onnxruntime-gpu) on a
    GPU, where the frames are bound to device memory once (I/O binding)."""
    import onnxruntime as ort

    from export.onnx_export import export_onnx

    rows = []
    for r in rs:
        with tempfile.TemporaryDirectory() as d:
            model, _ = build_alt(cfg.replace(merge_r=r))
            model.load_state_dict(alt.state_dict())
            save_checkpoint(Path(d) / "ckpt", model, corpus, ["a"])
            export_onnx(Path(d) / "ckpt", Path(d) / "onnx")
            cuda = device.startswith("cuda")
            providers = ["CUDAExecutionProvider"] if cuda else ["CPUExecutionProvider"]
            sess = ort.InferenceSession(str(Path(d) / "onnx" / "video.onnx"), providers=providers)
            frames = np.random.default_rng(0).integers(
                0, 255, (b, cfg.frames, 3, cfg.image_size, cfg.image_size), dtype=np.uint8
            )
            if cuda:
                binding = sess.io_binding()
                binding.bind_ortvalue_input(
                    "frames", ort.OrtValue.ortvalue_from_numpy(frames, "cuda", 0)
                )
                for out in sess.get_outputs():
                    binding.bind_output(out.name, "cuda")

                def call(sess=sess, binding=binding):
                    sess.run_with_iobinding(binding)
            else:

                def call(sess=sess):
                    sess.run(None, {"frames": frames})

            secs = median_seconds(call, reps=reps)
            macs = count(model.config, len(corpus)).per_view
            rows.append(
                [
                    f"ALT r={r} (ONNX Runtime{', CUDA EP' if cuda else ''})",
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
    p.add_argument("--entities", type=int, default=1000, help="entity corpus size")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd forwards")
    p.add_argument("--autocast", action="store_true",
                   help="also time bf16/fp16 as autocast over fp32 weights")  # fmt: skip
    a = p.parse_args()
    dtypes = a.dtypes or (
        ["fp32", "bf16", "fp16"] if a.device.startswith("cuda") else ["fp32", "bf16"]
    )
    peak_n = 2048
    if a.quick:
        # A CPU without native bf16 takes minutes over a 2048-wide bf16 matmul.
        a.batches, a.reps, peak_n = [1], 1, 256
    print(
        run(
            a.preset,
            a.batches,
            a.rs,
            dtypes,
            a.device,
            a.reps,
            a.onnx_rs,
            a.entities,
            a.compile,
            a.autocast,
            peak_n,
        )
    )


if __name__ == "__main__":
    main()

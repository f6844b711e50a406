"""Generate the action world: clips as H.264 mp4 files, Kinetics-style CSVs, masks, captions.

Layout of a generated world directory:

    videos/<split>/<n>.mp4     the clips
    <split>.csv                path,label (the same format the Kinetics loader reads)
    masks/<split>.npz          per clip, the entity id of each pixel on a 32x32 grid per frame
    captions/<split>.json      per clip, one caption per frame naming entities, never actions
    world.json                 classes, held-out classes, entities, seeds
"""

from __future__ import annotations

import csv
import json
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.video import write_video

from .actions import ACTIONS, HELD_OUT, ONE_SHOT, SEEN, TRAVEL, Motion
from .world import COLORS, ENTITY_NAMES, SCENE_PHRASES, SCENES, Look, draw_frame

MASK_SIZE = 32
SPLITS = ("train", "val", "test", "fewshot", "zeroshot")


def _seed(base: int, split: str, label: str, i: int) -> int:
    return zlib.crc32(f"{base}/{split}/{label}/{i}".encode())


def render_clip(action: str, seed: int, size: int = 128) -> tuple[np.ndarray, np.ndarray, dict]:
    """uint8 frames `(N, size, size, 3)`, entity ids `(N, size, size)` and facts of one clip."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.9, 1.3) * size / 128
    facing = int(rng.choice([-1, 1]))
    ground = size * rng.uniform(0.8, 0.9)
    scene = str(rng.choice(list(SCENES)))
    body_name, obj_name = (str(c) for c in rng.choice(list(COLORS), 2, replace=False))
    look = Look(
        size, scale, facing, ground, COLORS[body_name], body_name, COLORS[obj_name], obj_name, scene
    )
    n = int(rng.integers(16, 33))
    one_shot = action in ONE_SHOT
    cycles = 1.0 if one_shot else float(rng.uniform(1.0, 2.5))
    margin, span = 24 * scale, TRAVEL.get(action, 0.0) * size
    lo, hi = (margin, size - margin - span) if facing > 0 else (margin + span, size - margin)
    x0 = float(rng.uniform(lo, max(lo + 1, hi)))
    motion = Motion(x0, facing, scale, size, ground, cycles)
    distractors = []
    for _ in range(int(rng.choice([0, 0, 1, 2]))):
        kind = str(rng.choice(["ball", "box", "cup"]))
        color = COLORS[str(rng.choice(list(COLORS)))]
        dx = float(rng.choice([-1, 1])) * rng.uniform(30, 50) * scale
        lift = {"ball": 4.5, "box": 6.5, "cup": 3.4}[kind] * scale
        distractors.append((kind, (float(np.clip(x0 + dx, 5, size - 5)), ground - lift), color))
    u0, u_span = (rng.uniform(-0.05, 0.05), rng.uniform(0.9, 1.1)) if one_shot else (0.0, 1.0)
    shake, noise = float(rng.choice([0, 0, 1, 2])), float(rng.uniform(0.0, 0.04))
    frames, ids, shift = [], [], np.zeros(2, int)
    for t in range(n):
        u = float(np.clip(u0 + u_span * t / (n - 1), 0.0, 1.0))
        canvas = draw_frame(ACTIONS[action](u, motion), look, distractors)
        if shake:
            shift = np.clip(shift + rng.integers(-1, 2, 2), -shake, shake)
        frames.append(canvas.image(tuple(shift), noise, rng))
        ids.append(canvas.id_map(tuple(shift)))
    facts = {
        "action": action,
        "seed": seed,
        "frames": n,
        "scene": scene,
        "body": body_name,
        "object": obj_name,
    }
    return np.stack(frames), np.stack(ids), facts


def caption(ids: np.ndarray, facts: dict, rng: np.random.Generator) -> str:
    """A caption of one frame that names what is visible, never what happens."""
    visible = {ENTITY_NAMES[i - 1] for i in np.unique(ids) if i > 0}
    words = [f"a {facts['body']} person"]
    for obj in ("ball", "box", "cup", "chair"):
        if obj in visible:
            color = facts["object"] if obj != "chair" else "brown"
            words.append(f"a {color} {obj}" if rng.random() < 0.7 else f"a {obj}")
    parts = [p for p in ("head", "arm", "hand", "leg", "foot") if p in visible]
    rng.shuffle(parts)
    text = " with ".join([words[0], " and ".join(words[1:])]) if len(words) > 1 else words[0]
    if parts and rng.random() < 0.5:
        text += ", showing " + " and ".join(parts[:2])
    if rng.random() < 0.8:
        text += " " + SCENE_PHRASES[facts["scene"]]
    return ("a photo of " if rng.random() < 0.5 else "") + text + "."


def _make(job: tuple) -> tuple[str, str, np.ndarray, list[str]]:
    out, split, index, action, seed, size = job
    frames, ids, facts = render_clip(action, seed, size)
    rel = f"videos/{split}/{index:05d}.mp4"
    write_video(Path(out) / rel, frames, fps=25)
    step = size // MASK_SIZE
    small = ids[:, step // 2 :: step, step // 2 :: step][:, :MASK_SIZE, :MASK_SIZE]
    rng = np.random.default_rng(seed + 1)
    return rel, action, small, [caption(f, facts, rng) for f in ids]


def generate_world(
    out: Path,
    per_class: dict[str, int] | None = None,
    seed: int = 0,
    size: int = 128,
    workers: int = 2,
) -> dict:
    """Write every split; `per_class` gives clips per class for each split."""
    per_class = per_class or {"train": 64, "val": 6, "test": 16, "fewshot": 16, "zeroshot": 16}
    out = Path(out)
    jobs = []
    for split in SPLITS:
        classes = SEEN if split in ("train", "val", "test") else HELD_OUT
        (out / "videos" / split).mkdir(parents=True, exist_ok=True)
        for action in classes:
            for i in range(per_class[split]):
                jobs.append(
                    (str(out), split, len(jobs), action, _seed(seed, split, action, i), size)
                )
    results: dict[str, list] = {s: [] for s in SPLITS}
    with ProcessPoolExecutor(workers) as pool:
        for job, res in zip(
            jobs,
            tqdm(pool.map(_make, jobs, chunksize=8), total=len(jobs), desc="world", unit="clip"),
        ):
            results[job[1]].append(res)
    (out / "masks").mkdir(exist_ok=True)
    (out / "captions").mkdir(exist_ok=True)
    for split, rows in results.items():
        with open(out / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label"])
            w.writerows((rel, action) for rel, action, _, _ in rows)
        np.savez_compressed(out / "masks" / f"{split}.npz", **{rel: m for rel, _, m, _ in rows})
        (out / "captions" / f"{split}.json").write_text(
            json.dumps({rel: c for rel, _, _, c in rows})
        )
    meta = {"seen": list(SEEN), "held_out": list(HELD_OUT), "entities": list(ENTITY_NAMES),
            "seed": seed, "size": size, "per_class": per_class, "mask_size": MASK_SIZE}  # fmt: skip
    (out / "world.json").write_text(json.dumps(meta, indent=1))
    return meta

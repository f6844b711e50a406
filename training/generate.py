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

from media import write_video

from .actions import ACTIONS, HELD_OUT, ONE_SHOT, SEEN, TRAVEL, Motion
from .world import (
    COLORS,
    ENTITY_NAMES,
    RESTING_HEIGHT,
    SCENE_PHRASES,
    SCENES,
    Look,
    describe_objects,
    describe_pose,
    draw_frame,
)

MASK_SIZE = 32
SPLITS = ("train", "val", "test", "fewshot", "zeroshot")
SEEN_SPLITS = ("train", "val", "test")
# Optional: clips of the held-out actions for choosing settings, never tested on.
EXTRA_SPLITS = ("heldval",)


def _seed(base: int, split: str, label: str, i: int) -> int:
    return zlib.crc32(f"{base}/{split}/{label}/{i}".encode())


def render_clip(action: str, seed: int, size: int = 128) -> tuple[np.ndarray, np.ndarray, dict]:
    """uint8 frames `(N, size, size, 3)`, entity ids `(N, size, size)` and facts of one clip."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(1.35, 1.7) * size / 128  # the figure fills most of the frame
    facing = int(rng.choice([-1, 1]))
    ground = size * rng.uniform(0.88, 0.95)
    scene = str(rng.choice(list(SCENES)))
    body_name, obj_name = (str(c) for c in rng.choice(list(COLORS), 2, replace=False))
    look = Look(
        size, scale, facing, ground, COLORS[body_name], body_name, COLORS[obj_name], obj_name, scene
    )
    n = int(rng.integers(16, 33))
    one_shot = action in ONE_SHOT
    cycles = 1.0 if one_shot else float(rng.uniform(1.0, 2.5))
    margin, span = 18 * scale, TRAVEL.get(action, 0.0) * size
    lo, hi = (margin, size - margin - span) if facing > 0 else (margin + span, size - margin)
    x0 = float(rng.uniform(lo, max(lo + 1, hi)))
    motion = Motion(x0, facing, scale, size, ground, cycles)
    distractors = []
    for _ in range(int(rng.choice([0, 0, 1, 2]))):
        kind = str(rng.choice(["ball", "box", "cup"]))
        color = COLORS[str(rng.choice(list(COLORS)))]
        dx = float(rng.choice([-1, 1])) * rng.uniform(30, 50) * scale
        lift = RESTING_HEIGHT[kind] * scale
        distractors.append((kind, (float(np.clip(x0 + dx, 5, size - 5)), ground - lift), color))
    u0, u_span = (rng.uniform(-0.05, 0.05), rng.uniform(0.9, 1.1)) if one_shot else (0.0, 1.0)
    shake, noise = float(rng.choice([0, 0, 1, 2])), float(rng.uniform(0.0, 0.04))
    frames, ids, states, shift = [], [], [], np.zeros(2, int)
    for t in range(n):
        u = float(np.clip(u0 + u_span * t / (n - 1), 0.0, 1.0))
        frame = ACTIONS[action](u, motion)
        canvas = draw_frame(frame, look, distractors)
        states.append(
            {"pose": describe_pose(frame, look), "objects": describe_objects(frame, look)}
        )
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
        "states": states,  # per frame: posture and object phrases
    }
    return np.stack(frames), np.stack(ids), facts


def caption(ids: np.ndarray, facts: dict, t: int = 0) -> str:
    """A caption of frame `t`: what is visible and the posture it shows, never what happens.

    The wording choices are the clip's (drawn from its seed), so two frames of one clip get
    the same caption exactly when they show the same thing.
    """
    rng = np.random.default_rng(facts["seed"] + 1)
    photo, scene, color = rng.random(3) < (0.3, 0.6, 0.7)
    visible = {ENTITY_NAMES[i - 1] for i in np.unique(ids) if i > 0}
    state = facts["states"][t]
    text = f"a {facts['body']} person with " + " and ".join(state["pose"][:3])
    for phrase in state["objects"][:1]:
        kind = phrase.split()[1]
        if kind in visible and kind != "chair" and color:
            phrase = phrase.replace(f"a {kind}", f"a {facts['object']} {kind}", 1)
        if kind in visible or kind == "person":
            text += ", " + phrase
    if scene:
        text += " " + SCENE_PHRASES[facts["scene"]]
    text = ("a photo of " if photo else "") + text + "."
    return text.replace(" a orange", " an orange")


def _make(job: tuple) -> tuple[str, str, np.ndarray, list[str]]:
    out, split, index, action, seed, size = job
    frames, ids, facts = render_clip(action, seed, size)
    rel = f"videos/{split}/{index:05d}.mp4"
    write_video(Path(out) / rel, frames, fps=25)
    step = size // MASK_SIZE
    small = ids[:, step // 2 :: step, step // 2 :: step][:, :MASK_SIZE, :MASK_SIZE]
    return rel, action, small, [caption(f, facts, t) for t, f in enumerate(ids)]


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
    splits = SPLITS + tuple(s for s in EXTRA_SPLITS if per_class.get(s))
    for split in splits:
        classes = SEEN if split in SEEN_SPLITS else HELD_OUT
        (out / "videos" / split).mkdir(parents=True, exist_ok=True)
        for action in classes:
            for i in range(per_class[split]):
                jobs.append(
                    (str(out), split, len(jobs), action, _seed(seed, split, action, i), size)
                )
    results: dict[str, list] = {s: [] for s in splits}
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


def render_timeline(
    actions: list[str], seconds_each: float, seed: int, fps: int = 25, size: int = 128
) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """One long video of the world: each action's clip slowed down (frames repeated) to
    last `seconds_each`, one after another. -> uint8 frames `(N, size, size, 3)` and the
    truth as `(start_s, end_s, action)`."""
    parts, truth, start = [], [], 0.0
    for i, action in enumerate(actions):
        frames, _, _ = render_clip(action, seed + i, size)
        n = round(seconds_each * fps)
        parts.append(frames[np.minimum(np.arange(n) * len(frames) // n, len(frames) - 1)])
        truth.append((round(start, 3), round(start + n / fps, 3), action))
        start += n / fps
    return np.concatenate(parts), truth

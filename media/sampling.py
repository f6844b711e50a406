"""TSN frame sampling (docs/design.md §6): the one rule that training and serving share."""

from __future__ import annotations

import math
import random


def segment_indices(
    num_frames: int, frames: int, clip: int = 0, clips: int = 1, rng: random.Random | None = None
) -> list[int]:
    """Split the video into `frames` equal segments and take one frame of each.

    Test time (`rng` None): temporal clip `clip` of `clips` takes the point at
    `(clip + 0.5) / clips` of every segment (one clip: the segment centers). Training
    (`rng` given): a uniformly random point of every segment.
    """
    assert num_frames >= 1 and frames >= 1 and 0 <= clip < clips
    seg = num_frames / frames
    if rng is None:
        offsets = [(clip + 0.5) / clips] * frames
    else:
        offsets = [rng.random() for _ in range(frames)]
    return [min(num_frames - 1, int(math.floor((t + o) * seg))) for t, o in enumerate(offsets)]

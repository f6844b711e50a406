"""A tiny rasterizer that paints colors and entity ids together, so every pixel has ground truth."""

from __future__ import annotations

import numpy as np


class Canvas:
    """RGB float image `(H, W, 3)` in [0, 1] and an entity-id map `(H, W)` (0 = nothing)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rgb = np.zeros((size, size, 3), np.float32)
        self.ids = np.zeros((size, size), np.uint8)
        ys, xs = np.mgrid[0:size, 0:size]
        self._ys, self._xs = ys.astype(np.float32), xs.astype(np.float32)

    def _paint(self, mask: np.ndarray, color, entity: int) -> None:
        self.rgb[mask] = color
        self.ids[mask] = entity

    def fill_rows(self, y0: float, y1: float, color, entity: int) -> None:
        self._paint((self._ys >= y0) & (self._ys < y1), color, entity)

    def disk(self, center, radius: float, color, entity: int) -> None:
        cx, cy = center
        self._paint((self._xs - cx) ** 2 + (self._ys - cy) ** 2 <= radius**2, color, entity)

    def segment(self, p0, p1, width: float, color, entity: int) -> None:
        """A thick line with round caps: pixels within width/2 of the segment."""
        (x0, y0), (x1, y1) = p0, p1
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy or 1e-6
        t = np.clip(((self._xs - x0) * dx + (self._ys - y0) * dy) / length2, 0.0, 1.0)
        d2 = (self._xs - x0 - t * dx) ** 2 + (self._ys - y0 - t * dy) ** 2
        self._paint(d2 <= (width / 2) ** 2, color, entity)

    def rect(self, center, half_w: float, half_h: float, color, entity: int) -> None:
        cx, cy = center
        self._paint(
            (np.abs(self._xs - cx) <= half_w) & (np.abs(self._ys - cy) <= half_h), color, entity
        )

    def image(
        self, shift=(0, 0), noise: float = 0.0, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """uint8 `(H, W, 3)`, moved by an integer camera shake and with pixel noise."""
        img = np.roll(self.rgb, shift, axis=(0, 1))
        if noise and rng is not None:
            img = img + rng.normal(0.0, noise, img.shape).astype(np.float32)
        return (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)

    def id_map(self, shift=(0, 0)) -> np.ndarray:
        return np.roll(self.ids, shift, axis=(0, 1))

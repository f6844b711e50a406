"""Plan before decoding: from the demuxed index alone, a clip whose sampled frames lie too
far past their keyframes for the time limit (a seek bomb) is refused at once with 422,
naming the cause; the same pixels with keyframes close by are answered."""

from __future__ import annotations

import asyncio
import io

import numpy as np

from media import write_video
from media.decode import _Index, planned_frames
from tests.server.test_routes import InProcess, _settings


def test_the_plan_counts_the_frames_decoded_from_each_keyframe():
    pts = list(range(100))
    one_key = _Index(pts, [0], 100, False)
    assert planned_frames(one_key, [10, 50, 90]) == 91  # one pass from the start
    every_ten = _Index(pts, list(range(0, 100, 10)), 100, False)
    assert planned_frames(every_ten, [15, 55]) == 6 + 6  # a seek to 10, then to 50
    assert planned_frames(every_ten, [15, 18]) == 6 + 3  # onward: no keyframe in between
    assert planned_frames(every_ten, [15, 15]) == 6


def _video(keyframe_every: int) -> bytes:
    base = (np.add.outer(np.arange(240), np.arange(320)) % 256).astype(np.uint8)
    base = np.stack([base, base[::-1], 255 - base], axis=2)
    frames = np.stack([np.roll(base, 3 * t, axis=1) for t in range(750)])  # 30 s at 25 fps
    buf = io.BytesIO()
    write_video(buf, frames, keyframe_every=keyframe_every)
    return buf.getvalue()


def test_a_seek_bomb_is_refused_from_its_index_and_a_keyframed_twin_is_answered():
    bomb, twin = _video(100_000), _video(25)

    async def main():
        # 1 Mpx/s over the 30 s limit: 30 Mpx, 390 frames of 320x240 to reach the samples.
        async with InProcess(_settings(decode_rate_mpx=1)) as c:
            refused = await c.post(
                "/recognize", content=bomb, headers={"content-type": "video/mp4"}
            )
            served = await c.post("/recognize", content=twin, headers={"content-type": "video/mp4"})
            after = await c.get("/readyz")
        return refused, served, after

    refused, served, after = asyncio.run(main())
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["error"] == "decode_failed"
    assert body["detail"].startswith("a single keyframe in 30 s: sampling 4 frames needs")
    assert "320x240" in body["detail"] and "ALT_DECODE_RATE_MPX" in body["detail"]
    assert served.status_code == 200 and after.status_code == 200

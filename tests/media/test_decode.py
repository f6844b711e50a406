"""The decoder on real files: exact frames, planned seeks, views, odd inputs, bounds."""

import io

import av
import numpy as np
import pytest

from media import (
    CorruptVideo,
    Limits,
    NotAVideo,
    VideoTooLarge,
    decode_clip,
    decode_frames,
    segment_indices,
    write_video,
)
from tests import videos


def _full(data: bytes, size: int) -> np.ndarray:
    return decode_frames(data, size)  # every frame, decoded in order from the start


@pytest.mark.parametrize("keyframe_every", [10, 250])
def test_sampled_frames_equal_the_full_decode_at_their_indices(keyframe_every):
    data = videos.keyframed_mp4(frames=120, keyframe_every=keyframe_every)
    full = _full(data, 48)
    video, info = decode_clip(data, 8, 48)
    assert info.num_frames == 120 == len(full)
    assert list(info.sampled[0]) == segment_indices(120, 8)
    for t, i in enumerate(info.sampled[0]):
        np.testing.assert_array_equal(video[0, t], full[i])
    if keyframe_every == 10:  # the sampled frames lie in different GOPs: one seek each
        assert info.seeks == 8
    else:  # one keyframe: decoded forward from the start, never re-sought
        assert info.seeks == 1


def test_several_views_per_video():
    data = videos.keyframed_mp4(frames=90, keyframe_every=15, size=(64, 112))
    full = _full(data, 48)
    video, info = decode_clip(data, 4, 48, clips=3, crops=3)
    assert video.shape == (9, 4, 3, 48, 48) and len(info.sampled) == 3
    assert len({tuple(s) for s in info.sampled}) == 3  # three different temporal clips
    for c, picks in enumerate(info.sampled):
        assert list(picks) == segment_indices(90, 4, c, 3)
        left, center, right = video[3 * c], video[3 * c + 1], video[3 * c + 2]
        assert not np.array_equal(left, right)  # both ends of the long side
        # The middle crop of three is the single center crop (84 - 48 px to share out).
        np.testing.assert_array_equal(center, full[list(picks)])


def test_scaling_to_the_short_side_then_center_crop():
    # A frame whose left and right quarters are black and the middle is white: after the
    # short side is scaled to 32 the 32x32 center crop is all white.
    frame = np.zeros((64, 128, 3), np.uint8)
    frame[:, 32:96] = 255
    buf = io.BytesIO()
    write_video(buf, np.stack([frame] * 4), crf=0)
    video, info = decode_clip(buf.getvalue(), 2, 32)
    assert (info.width, info.height) == (128, 64)
    assert video[0, :, :, :, 2:-2].min() >= 250  # inside the crop, away from its edges


def test_an_animated_gif_is_a_video_and_a_still_image_is_not():
    video, info = decode_clip(videos.animated_gif(frames=6), 4, 32)
    assert video.shape == (1, 4, 3, 32, 32) and info.num_frames == 6
    assert video[0, :, 0, 0, 0].tolist() == sorted(video[0, :, 0, 0, 0].tolist())  # brightens
    with pytest.raises(NotAVideo, match="still image"):
        decode_clip(videos.animated_gif(frames=1), 4, 32)
    with pytest.raises(NotAVideo, match="still image"):
        decode_clip(videos.png_image(), 4, 32)


def test_a_stream_cut_short_is_answered_from_its_frames_with_a_warning():
    data = videos.faststart_mp4(frames=100)
    video, info = decode_clip(data[: int(len(data) * 0.6)], 8, 32)
    assert video.shape == (1, 8, 3, 32, 32)
    assert 20 < info.num_frames < 100 and max(info.sampled[0]) < info.num_frames
    warning = info.warnings[0]  # a second one may say that the cut-off last frame is lost
    assert f"holds {info.num_frames}" in warning and "announces 100 frames" in warning
    _, whole = decode_clip(data, 8, 32)
    assert whole.warnings == () and whole.num_frames == 100


def test_rotation_metadata_is_honoured():
    for degrees, corner in ((90, (-1, 0)), (-90, (0, -1))):
        video, info = decode_clip(videos.rotated_mp4(degrees), 2, 32, crops=3)
        assert (info.width, info.height) == (32, 64) and info.rotation == degrees % 360
        # Portrait now: crops run top to bottom; the marker (top-left in the stream) is
        # in the bottom-left corner after a quarter turn counterclockwise, top-right after
        # a quarter turn clockwise.
        view = video[0 if corner[0] == 0 else 2, 0, 0]
        y = slice(0, 8) if corner[0] == 0 else slice(-8, None)
        x = slice(0, 8) if corner[1] == 0 else slice(-8, None)
        assert view[y, x].mean() > 200 and video[:, 0, 0].mean() < 40


def test_extreme_aspect_ratios_are_cropped_before_scaling():
    # 2000x2: scaled as it is, the short side of 32 would make a 32000-pixel-wide image.
    video, info = decode_clip(videos.sized_mp4(2000, 2), 2, 32)
    assert video.shape == (1, 2, 3, 32, 32) and (info.width, info.height) == (2000, 2)


def test_limits_hold_on_what_the_stream_holds():
    with pytest.raises(VideoTooLarge, match="4096x4096"):
        decode_clip(videos.huge_frame_mp4(), 2, 32)
    with pytest.raises(VideoTooLarge, match="40.0 s"):
        decode_clip(videos.long_video_mp4(40), 2, 32, limits=Limits(max_duration_s=30))
    with pytest.raises(VideoTooLarge, match="over 50 frames"):
        decode_clip(videos.keyframed_mp4(frames=60), 2, 32, limits=Limits(max_frames=50))


def test_not_videos():
    with pytest.raises(NotAVideo, match="not a readable video"):
        decode_clip(b"definitely not a video" * 50, 2, 32)
    with pytest.raises(NotAVideo, match="no video stream"):
        decode_clip(videos.audio_only_m4a(), 2, 32)
    with pytest.raises((NotAVideo, CorruptVideo)):
        decode_clip(videos.faststart_mp4()[:1500], 2, 32)


def test_a_raw_stream_without_timestamps_decodes_in_order():
    data = videos.keyframed_mp4(frames=40, keyframe_every=10)
    raw = io.BytesIO()
    with av.open(io.BytesIO(data)) as src, av.open(raw, mode="w", format="h264") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = out
                dst.mux(packet)
    video, info = decode_clip(raw.getvalue(), 4, 32)
    full = _full(data, 32)
    assert info.num_frames == 40
    for t, i in enumerate(info.sampled[0]):
        np.testing.assert_array_equal(video[0, t], full[i])

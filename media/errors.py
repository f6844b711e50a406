"""What can be wrong with an uploaded video, as exceptions whose message tells the user why."""

from __future__ import annotations


class VideoError(ValueError):
    """The input cannot be used as a video; the message says why."""


class NotAVideo(VideoError):
    """Not a media container we can open, no video stream in it, or a still image."""


class CorruptVideo(VideoError):
    """A video stream is there, but no frame of it decodes (truncated or damaged)."""


class VideoTooLarge(VideoError):
    """Within a readable file, the video exceeds a configured limit."""


class DecodeFailed(VideoError):
    """The decoder itself failed on this file: it crashed or ran past its time limit."""


class TooCostly(VideoError):
    """Reaching the sampled frames would take more decoding than the time limit allows
    (keyframes too far apart for the video's size), known from the index before decoding."""

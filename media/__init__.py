"""Media: decode, sample, scale and encode video with PyAV. Imports nothing else of ours.

Training and the server share these functions, so a served clip is sampled and scaled
exactly as the model saw clips in training.
"""

from .decode import Limits, VideoInfo, decode_clip, decode_frames, scale_frame
from .encode import write_video
from .errors import CorruptVideo, DecodeFailed, NotAVideo, TooCostly, VideoError, VideoTooLarge
from .jobs import DecodeJob, WindowJob
from .sampling import segment_indices

__all__ = [
    "CorruptVideo",
    "DecodeJob",
    "WindowJob",
    "DecodeFailed",
    "Limits",
    "NotAVideo",
    "TooCostly",
    "VideoError",
    "VideoInfo",
    "VideoTooLarge",
    "decode_clip",
    "decode_frames",
    "scale_frame",
    "segment_indices",
    "write_video",
]

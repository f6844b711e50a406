"""Live streams: sources watched continuously, labelled online, events as they happen."""

from .manager import StreamLimits, StreamManager, Watch
from .schemas import StreamList, StreamSpec, StreamStatus
from .store import StreamStore

__all__ = ["StreamLimits", "StreamList", "StreamManager", "StreamSpec", "StreamStatus",
           "StreamStore", "Watch"]  # fmt: skip

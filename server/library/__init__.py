"""The video library: a video's windows indexed once (embeddings and aligned entities),
then any label set's timeline and free-text search answered from them without decoding.
No web framework here; `server.api` serves the routes."""

from .answers import moments, query_scores, stored_timeline
from .fingerprint import Fingerprint, digest_of, fingerprint
from .indexer import Indexer
from .store import Library, ModelMismatch, StoredWindows, VideoRow, check_id

__all__ = [
    "Fingerprint",
    "Indexer",
    "Library",
    "ModelMismatch",
    "StoredWindows",
    "VideoRow",
    "check_id",
    "digest_of",
    "fingerprint",
    "moments",
    "query_scores",
    "stored_timeline",
]

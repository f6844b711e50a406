"""The video library: a video's windows indexed once (embeddings and aligned entities),
then any label set's timeline and free-text search answered from them without decoding.
No web framework here; `server.api` serves the routes."""

import os
from pathlib import Path

from ..engine.backends import ModelInfo
from .answers import moments, query_scores, relabel_options, search_moments, stored_timeline
from .fingerprint import Fingerprint, digest_of, fingerprint, of_model
from .indexer import Indexer
from .opener import LibraryOpener
from .store import Library, ModelMismatch, StoredWindows, VideoRow, check_id


def open_for_model(
    uri: str | None, info: ModelInfo, backend: str, model_dir: Path | None, index_rows: int
) -> Library:
    """The library at `uri` for the model `info` describes (`ModelMismatch` when another
    model built it); a local folder is checked for writing now rather than mid-index."""
    assert uri, "the settings name the library"
    built_by = of_model(info.name, info.version, info.clip_arch, info.dtype, backend, model_dir)
    library = Library(uri, built_by, index_rows=index_rows)
    if not library.remote:
        probe = Path(uri) / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    return library


__all__ = [
    "Fingerprint",
    "Indexer",
    "Library",
    "LibraryOpener",
    "ModelMismatch",
    "StoredWindows",
    "VideoRow",
    "check_id",
    "digest_of",
    "fingerprint",
    "moments",
    "of_model",
    "open_for_model",
    "query_scores",
    "relabel_options",
    "search_moments",
    "stored_timeline",
]

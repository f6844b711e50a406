"""The served model's library, opened on its first use rather than at the server's start.

A server whose clients never touch the library never loads LanceDB (about a CPU-second of
imports at every start, more on a busy machine), and a library that could not be opened
(an object store down, a volume not yet mounted, a library another model built and since
replaced) is tried again at a later use instead of only at the next start."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..engine.errors import ModelConflict, ServiceError, Unavailable
from .store import Library, ModelMismatch

log = logging.getLogger(__name__)
RETRY_S = 5.0  # a library that failed to open is tried again at the first use after this


class LibraryOpener:
    """`opener()` -> the library, opened at the first call; raises the `ServiceError` a
    route answers with: 409 `ModelConflict` when another model built it, 503 `Unavailable`
    when it cannot be opened or written. Thread-safe; opening blocks, so async callers call
    it in a thread."""

    def __init__(self, open_: Callable[[], Library], where: str, retry_s: float = RETRY_S):
        self._open, self.where, self.retry_s = open_, where, retry_s
        self._lock = threading.Lock()
        self._library: Library | None = None
        self._problem: ServiceError | None = None
        self._failed_at = 0.0

    @classmethod
    def of(cls, library: Library) -> LibraryOpener:
        """An opener of a library already open (the offline indexers open theirs first)."""
        return cls(lambda: library, library.uri)

    @classmethod
    def none(cls, reason: str) -> LibraryOpener:
        """No library: every use answers 503 with `reason`."""
        return cls(lambda: _fail(f"the library is unavailable: {reason}"), "")

    @property
    def opened(self) -> Library | None:
        """The library if it is open now; never opens it."""
        return self._library

    def __call__(self) -> Library:
        if self._library is not None:
            return self._library
        with self._lock:
            if self._library is not None:
                return self._library
            if self._problem is not None and time.monotonic() - self._failed_at < self.retry_s:
                raise self._problem
            try:
                self._library = self._open()
                self._problem = None
                return self._library
            except ModelMismatch as err:
                log.error("library: %s", err)
                self._problem = ModelConflict(str(err))
            except ServiceError as err:
                self._problem = err
            except Exception as err:  # noqa: BLE001 - any reason a library cannot open is said
                reason = str(err) if isinstance(err, OSError) else f"{type(err).__name__}: {err}"
                log.error("the library is unavailable: %s (ALT_LIBRARY=%s)", reason, self.where)
                self._problem = Unavailable(
                    f"the library is unavailable: {reason} (ALT_LIBRARY={self.where})"
                )
            self._failed_at = time.monotonic()
            raise self._problem


def _fail(reason: str) -> Library:
    raise Unavailable(reason)

"""Label sets: parsing and validation, their embeddings (encoded in chunks, or read from
the checkpoint for its default set), and the embedding cache."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from model import catalog

from .backends import Backend
from .errors import BadRequest

LABEL_CHUNK = 64  # labels per text-encoder call


def parse_labels(raw: Sequence[str] | None, max_labels: int, max_chars: int) -> list[str] | None:
    """`labels=a&labels=b` and `labels=a,b` both work; order kept, duplicates dropped;
    `labels=@name` names a shipped set (`GET /label-sets`).

    The count is checked before anything else, so no label list costs more than a split.
    """
    if raw is None:
        return None
    if len(raw) == 1 and raw[0].strip().startswith("@"):
        return named_label_set(raw[0].strip()[1:])
    parts = [part for item in raw for part in item.split(",")]
    if len(parts) > max_labels:
        raise BadRequest(f"{len(parts)} labels given; the limit is {max_labels}")
    labels: dict[str, None] = {}
    for part in parts:
        label = " ".join(part.split())
        if not label:
            raise BadRequest("labels must not be empty (check for stray commas)")
        if len(label) > max_chars:
            raise BadRequest(f"label {label[:40]!r}... is longer than {max_chars} characters")
        labels.setdefault(label)
    return list(labels)


def named_label_set(name: str) -> list[str]:
    """A shipped label set (`labels=@kinetics400`); its size is the set's, not a user's."""
    try:
        return catalog.label_set(name)
    except KeyError:
        known = ", ".join(f"@{n}" for n in catalog.LABEL_SETS)
        raise BadRequest(f"unknown label set @{name}; known: {known}") from None


class LabelCache:
    """LRU of label-set embeddings, keyed by the labels and the templates they were made with."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()

    @staticmethod
    def key(labels: Sequence[str], templates: Sequence[str]) -> tuple:
        return (tuple(labels), tuple(templates))

    def get(self, key: tuple) -> np.ndarray | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: tuple, value: np.ndarray) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def label_chunks(labels: Sequence[str]) -> Iterator[list[str]]:
    """A label set in text-encoder calls of `LABEL_CHUNK`, so that the model thread can run
    video batches between them."""
    for i in range(0, len(labels), LABEL_CHUNK):
        yield list(labels[i : i + LABEL_CHUNK])


def stored_embeddings(backend: Backend, labels: Sequence[str]) -> np.ndarray | None:
    """The checkpoint's own embeddings when `labels` is its default set and it stores one
    per label; None when they must be encoded."""
    if tuple(labels) != tuple(backend.info.default_labels):
        return None
    stored = backend.stored_label_embeddings()
    return stored if stored is not None and len(stored) == len(labels) else None


def encode_label_set(backend: Backend, labels: Sequence[str]) -> np.ndarray:
    """Embeddings `(L, D)` of a label set, in this thread (where no batcher runs)."""
    stored = stored_embeddings(backend, labels)
    if stored is not None:
        return stored
    return np.concatenate([backend.encode_labels(chunk) for chunk in label_chunks(labels)])

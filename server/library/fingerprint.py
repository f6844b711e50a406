"""What makes two models' embedding spaces differ, as one short string.

A library's stored embeddings mean something only next to the label embeddings of the
model that made them: another checkpoint, another corpus (entity ids index into it), or
other weights' precision gives vectors that compare without error and answer garbage. The
fingerprint hashes the files that fix the space (weights, corpus, config or the export's
meta) and names the architecture and the dtype, so a library refuses another model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

# Files whose bytes fix the embedding space: a checkpoint's weights, corpus and config,
# or an export's graphs and meta. Reports, samples and cards (config.json's `card`) do not.
_SPACE_FILES = ("*.safetensors", "*.onnx", "*.onnx.data", "*.bin", "config.json", "meta.json")


@dataclass(frozen=True)
class Fingerprint:
    name: str  # the model's name and version, for people
    arch: str  # the CLIP architecture (preset)
    dtype: str
    digest: str  # sha256 of the files that fix the space, first 16 hex digits

    @property
    def key(self) -> str:
        """What must match: the digest, the architecture and the dtype."""
        return f"{self.digest}:{self.arch}:{self.dtype}"

    def describe(self) -> str:
        return f"{self.name} ({self.arch}, {self.dtype}, weights {self.digest})"

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "arch": self.arch, "dtype": self.dtype, "digest": self.digest}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Fingerprint:
        return cls(data["name"], data["arch"], data["dtype"], data["digest"])


def digest_of(model_dir: Path) -> str:
    """sha256 over the space-fixing files of a model directory (names and bytes, sorted)."""
    h = hashlib.sha256()
    files = sorted({p for pattern in _SPACE_FILES for p in model_dir.glob(pattern) if p.is_file()})
    if not files:
        raise FileNotFoundError(f"no model files in {model_dir}")
    for path in files:
        h.update(path.name.encode() + b"\0")
        if path.name == "config.json":
            h.update(_without_card(path.read_bytes()))
            continue
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()[:16]


def _without_card(raw: bytes) -> bytes:
    """config.json's bytes as `save_checkpoint` writes them without a card (a config with no
    card: its bytes as they are), so rewriting what a model says of itself keeps its space."""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(data, dict) or "card" not in data:
        return raw
    data.pop("card")
    return (json.dumps(data, indent=2) + "\n").encode()


def fingerprint(name: str, version: str, arch: str, dtype: str, model_dir: Path) -> Fingerprint:
    return Fingerprint(f"{name} {version}", arch, dtype, digest_of(model_dir))


def of_model(
    name: str, version: str, arch: str, dtype: str, backend: str, model_dir: Path | None
) -> Fingerprint:
    """The served model's fingerprint; the weightless test backend has a fixed one."""
    if backend == "fake" or model_dir is None:
        return Fingerprint(f"{name} {version}", arch, dtype, backend)
    return fingerprint(name, version, arch, dtype, model_dir)

"""ALT model core: torch only, imports nothing else of this project.

Names load on first use, so `model.config` and `model.catalog` (plain Python) can be read
without importing torch.
"""

from importlib import import_module

_WHERE = {
    "ALT": "alt",
    "VideoOutput": "alt",
    "Bundle": "checkpoint",
    "CheckpointError": "checkpoint",
    "build_alt": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "PRESETS": "config",
    "ALTConfig": "config",
    "preset": "config",
    "Entity": "corpus",
    "EntityCorpus": "corpus",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)

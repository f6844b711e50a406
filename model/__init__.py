"""ALT model core: torch only, imports nothing else of this project."""

from .alt import ALT, VideoOutput
from .checkpoint import Bundle, CheckpointError, build_alt, load_checkpoint, save_checkpoint
from .config import PRESETS, ALTConfig, preset
from .corpus import Entity, EntityCorpus

__all__ = [
    "ALT",
    "ALTConfig",
    "Bundle",
    "CheckpointError",
    "Entity",
    "EntityCorpus",
    "PRESETS",
    "VideoOutput",
    "build_alt",
    "load_checkpoint",
    "preset",
    "save_checkpoint",
]

"""Constants shared by tests."""

LABELS = [
    "waving",
    "clapping",
    "jumping",
    "kicking a ball",
    "throwing a ball",
    "drinking from a cup",
]
ENTITIES = [
    "hand",
    "arm",
    "leg",
    "head",
    "ball",
    "cup",
    "box",
    "grass",
    "floor",
    "red",
    "blue",
    "sky",
]

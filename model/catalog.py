"""Shipped data for real videos: named label sets and a real-world entity corpus.

Label sets (`data/label_sets/*.txt`) are the class names of public action datasets, one per
line, as published; `label_set(name)` turns them into prompt-ready words ("ApplyEyeMakeup"
-> "apply eye makeup", "ride_bike" -> "ride bike"). The entity corpus
(`data/entities/*.txt`) unites public category lists with our body parts and clothing and
the nouns of the action labels. Standard library only: the server lists label sets without
torch.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

DATA = Path(__file__).parent / "data"

# name -> (title, file)
LABEL_SETS: dict[str, tuple[str, str]] = {
    "kinetics400": ("Kinetics-400", "kinetics400.txt"),
    "ucf101": ("UCF-101", "ucf101.txt"),
    "hmdb51": ("HMDB-51", "hmdb51.txt"),
    "ssv2": ("Something-Something V2", "something_something_v2.txt"),
}

# Entity sources: file -> (kind, where it comes from).
ENTITY_SOURCES: dict[str, tuple[str, str]] = {
    "coco.txt": ("object", "COCO 2017 object categories"),
    "places365.txt": ("scene", "Places365-Standard scene categories"),
    "body.txt": ("body part", "ours"),
    "clothing.txt": ("clothing", "ours"),
}
# Nouns mined from these label sets' names join the corpus as objects (Kinetics-400's
# names are gerund phrases, which the miner reads; UCF-101's and HMDB-51's are not).
LABEL_NOUN_SETS = ("kinetics400",)

# Places365 qualifiers that add nothing a frame shows ("bedroom" for "bedroom/indoor").
_DROP_QUALIFIERS = frozenset(
    [
        "indoor",
        "outdoor",
        "exterior",
        "interior",
        "public",
        "natural",
        "urban",
        "shop",
        "door",
        "platform",
        "water",
        "broadleaf",
        "cultivated",
        "wild",
        "sand",
        "vegetation",
        "asia",
        "ocean_deep",
    ]
)
# Spelling as published -> as a prompt should read it.
_SPELLING = {
    "archaelogical excavation": "archaeological excavation",
    "kindergarden classroom": "kindergarten classroom",
    "childs room": "child's room",
    "artists loft": "artist's loft",
    "butchers shop": "butcher's shop",
    "veterinarians office": "veterinarian's office",
    "tv": "television",
    "hair drier": "hair dryer",
}
# Words of label names that are not things one can point at.
_NOT_ENTITIES = frozenset(
    [
        "not",
        "game",
        "american",
        "sport",
        "number",
        "one",
        "two",
        "nothing",
        "part",
        "way",
        "both",
        "each",
        "other",
        "side",
        "top",
        "front",
        "left",
        "right",
        "through",
        "questions",
        "contact",
        "clean",
        "jerk",
        "raises",
        "drop",
        "push",
        "line",
        "news",
        "music",
        "award",
        "indoor",
        "s",
        "country",
        "style",
        "kick",
        "tap",
        "spray",
        "vault",
        "roller",
        "crosscountry",
        "slalom",
        "crowd",
        "present",
        "jumpstyle",
        "lunge",
        "squat",
        "situp",
        "parkour",
        "yoga",
        "zumba",
        "hula",
        "chips",
        "shots",
    ]
)


def _lines(path: Path) -> list[str]:
    return [s for line in path.read_text().splitlines() if (s := line.split("#", 1)[0].strip())]


def _words(name: str) -> str:
    """Dataset class name -> lowercase words: CamelCase and snake_case split."""
    name = name.replace("_", " ")
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return " ".join(name.split()).lower() if name != name.lower() or "_" in name else name


def label_set(name: str) -> list[str]:
    """The labels of a named set, ready for prompts; KeyError names the known sets."""
    if name not in LABEL_SETS:
        raise KeyError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    raw = _lines(DATA / "label_sets" / LABEL_SETS[name][1])
    if name in ("ucf101", "hmdb51"):
        return [_words(r) for r in raw]
    return raw


def _place(raw: str) -> str:
    base, _, qualifier = raw.partition("/")
    words = base.replace("_", " ")
    if qualifier and qualifier not in _DROP_QUALIFIERS:
        words = f"{qualifier.replace('_', ' ')} {words}"
    return _SPELLING.get(words, words)


@cache
def entity_sources() -> dict[str, list[str]]:
    """Source title -> its entity names, normalized, in file order (before dedup)."""
    out: dict[str, list[str]] = {}
    for file, (_, title) in ENTITY_SOURCES.items():
        names = _lines(DATA / "entities" / file)
        if file == "places365.txt":
            names = [_place(n) for n in names]
        out[title if title != "ours" else f"ours ({file.removesuffix('.txt')})"] = [
            _SPELLING.get(n, n) for n in names
        ]
    out["nouns of the Kinetics-400 labels"] = _label_nouns()
    return out


def _label_nouns() -> list[str]:
    from .corpus import entities_from_labels  # torch: only when a corpus is being built

    labels = [label for name in LABEL_NOUN_SETS for label in label_set(name)]
    nouns = []
    for e in entities_from_labels(labels):
        words = [w for w in e.name.split() if w not in _NOT_ENTITIES]
        if words and len(" ".join(words)) > 2:
            nouns.append(" ".join(words))
    return nouns


def real_world_entities():
    """The shipped real-world corpus: `Entity` objects, deduplicated by name, first source
    first (so a scene named like an object stays an object)."""
    from .corpus import Entity

    kinds = {title: kind for title, kind in _titles()}
    seen: dict[str, Entity] = {}
    for title, names in entity_sources().items():
        for name in names:
            if _key(name) not in seen:
                seen[_key(name)] = Entity(name, kind=kinds.get(title, "object"))
    return list(seen.values())


def _key(name: str) -> str:
    """Names that differ only by case or a plural s are one entity ("balls", "ball")."""
    name = name.lower()
    return name[:-1] if name.endswith("s") and not name.endswith("ss") and len(name) > 3 else name


def _titles():
    for file, (kind, title) in ENTITY_SOURCES.items():
        yield (title if title != "ours" else f"ours ({file.removesuffix('.txt')})"), kind


# open_clip pretrained tags known to work for each preset (a few of open_clip's list).
KNOWN_TAGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "B/32": ("ViT-B-32", ("openai", "laion2b_s34b_b79k", "datacomp_xl_s13b_b90k")),
    "B/16": ("ViT-B-16", ("openai", "laion2b_s34b_b88k", "datacomp_xl_s13b_b90k", "dfn2b")),
    "L/14": ("ViT-L-14", ("openai", "laion2b_s32b_b82k", "datacomp_xl_s13b_b90k", "dfn2b")),
    "L/14-336": ("ViT-L-14-336", ("openai",)),
}


def presets_help(one_line: bool = False) -> str:
    """The presets for real weights, their open_clip models and tags known to work."""
    if one_line:
        return "presets for real weights: " + "; ".join(
            f"{name} (open_clip {arch}: {', '.join(tags)})"
            for name, (arch, tags) in KNOWN_TAGS.items()
        )
    return "\n".join(
        f"  {name:9s} open_clip {arch:13s} tags: {', '.join(tags)}"
        for name, (arch, tags) in KNOWN_TAGS.items()
    )


INIT_HELP = (
    "presets (open_clip model, pretrained tags known to work):\n"
    + presets_help()
    + "\n\nexamples:\n  alt init --preset B/16 --pretrained laion2b_s34b_b88k --out ckpt/b16\n"
    "  alt init --preset B/32 --pretrained ./open_clip_b32.pt --dtype fp16 --out ckpt/b32\n"
    "  alt serve --checkpoint ckpt/b16"
)

"""The entity corpus (docs/design.md §2): named visual units and their offline text embeddings.

Built once with the CLIP text encoder over prompt templates, stored as
`corpus.safetensors` (the `(E, D)` embeddings) + `corpus.json` (the entities), and never
recomputed per request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

# Body parts are always in the corpus: every action is done by some of them (docs/design.md §2).
BODY_PARTS: tuple[str, ...] = (
    "head", "face", "hair", "eyes", "mouth", "neck", "shoulder", "arm", "elbow", "hand",
    "fingers", "torso", "hip", "leg", "knee", "foot",
)  # fmt: skip

# Words that never make an entity on their own when entities are mined from label names.
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "on",
        "in",
        "into",
        "onto",
        "at",
        "to",
        "from",
        "with",
        "without",
        "by",
        "for",
        "and",
        "or",
        "up",
        "down",
        "out",
        "off",
        "over",
        "under",
        "something",
        "someone",
        "somebody",
        "person",
        "people",
        "man",
        "woman",
        "his",
        "her",
        "their",
        "its",
        "own",
    ]
)


@dataclass(frozen=True)
class Entity:
    name: str
    description: str = ""  # optional one-line visual description
    kind: str = ""  # object | body part | scene | role | motion | ... (informational)


@dataclass(frozen=True)
class EntityCorpus:
    entities: tuple[Entity, ...]
    embeddings: Tensor  # (E, D), L2-normalized

    def __post_init__(self) -> None:
        assert self.embeddings.ndim == 2, (
            f"embeddings must be (E, D), got {tuple(self.embeddings.shape)}"
        )
        assert len(self.entities) == self.embeddings.shape[0], (
            f"{len(self.entities)} entities but {self.embeddings.shape[0]} embeddings"
        )
        names = [e.name for e in self.entities]
        assert len(set(names)) == len(names), "entity names must be unique"

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entities]

    def __len__(self) -> int:
        return len(self.entities)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_file(
            {"embeddings": self.embeddings.contiguous()}, str(directory / "corpus.safetensors")
        )
        data = {"entities": [asdict(e) for e in self.entities]}
        (directory / "corpus.json").write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, directory: Path) -> EntityCorpus:
        data = json.loads((directory / "corpus.json").read_text())
        embeddings = load_file(str(directory / "corpus.safetensors"))["embeddings"]
        return cls(tuple(Entity(**e) for e in data["entities"]), embeddings)


def read_entity_file(path: Path) -> list[Entity]:
    """A JSON list of `{"name", "description"?, "kind"?}` objects or strings, or a text file
    with one `name` or `name: description` per line (`#` starts a comment)."""
    text = path.read_text()
    if path.suffix == ".json":
        items = json.loads(text)
        return [Entity(name=i) if isinstance(i, str) else Entity(**i) for i in items]
    entities = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, description = line.partition(":")
            entities.append(Entity(name.strip(), description.strip()))
    return entities


def entities_from_labels(labels: Iterable[str]) -> list[Entity]:
    """Noun phrases of action labels: drop gerunds and function words, keep the runs between.

    "kicking a ball" -> "ball"; "drinking from a cup" -> "cup"; "playing guitar" -> "guitar".
    """
    found: dict[str, None] = {}
    for label in labels:
        run: list[str] = []
        for word in [*re.findall(r"[a-z]+", label.lower()), "."]:
            if word in _STOP or word.endswith("ing") or word == ".":
                if run:
                    found[" ".join(run)] = None
                run = []
            else:
                run.append(word)
    return [Entity(name, kind="object") for name in found]


def label_entity_targets(labels: Sequence[str], names: Sequence[str]) -> Tensor:
    """`(L, E)`: for each label, equal shares over the corpus entities it names as a word
    ("kicking a ball" -> ball; "raising both arms" -> arm); a row of zeros names none."""
    index = {name: j for j, name in enumerate(names)}
    targets = torch.zeros(len(labels), len(names))
    for i, label in enumerate(labels):
        text = " ".join(re.findall(r"[a-z]+", label.lower()))
        hits = {j for name, j in index.items() if re.search(rf"\b{re.escape(name)}s?\b", text)}
        for j in hits:
            targets[i, j] = 1.0 / len(hits)
    return targets


def merge_entities(*groups: Iterable[Entity]) -> list[Entity]:
    """Union by name, first occurrence wins (so hand-written descriptions beat mined ones)."""
    out: dict[str, Entity] = {}
    for group in groups:
        for e in group:
            out.setdefault(e.name, e)
    return list(out.values())


def pool_prompts(feats: Tensor, counts: Sequence[int]) -> Tensor:
    """Prompt embeddings `(sum(counts), D)`, grouped in order -> `(len(counts), D)`: each
    group's normalized mean of normalized embeddings (differentiable)."""
    groups = torch.split(torch.nn.functional.normalize(feats.float(), dim=-1), list(counts))
    return torch.nn.functional.normalize(torch.stack([g.mean(dim=0) for g in groups]), dim=-1)


def entity_prompts(entity: Entity, templates: Sequence[str]) -> list[str]:
    prompts = [t.format(entity.name) for t in templates]
    if entity.description:
        prompts.append(f"{entity.name}: {entity.description}")
    return prompts


@torch.no_grad()
def build_corpus(
    entities: Sequence[Entity],
    encode_text: Callable[[list[str]], Tensor],
    templates: Sequence[str],
    batch_size: int = 256,
) -> EntityCorpus:
    """Embed each entity as the normalized mean of its normalized prompt embeddings.

    `encode_text` maps a list of strings to `(N, D)` embeddings (e.g. `ALT.encode_strings`).
    """
    if not entities:
        raise ValueError("an entity corpus needs at least one entity")
    prompts = [entity_prompts(e, templates) for e in entities]
    flat = [p for group in prompts for p in group]
    feats = torch.cat(
        [encode_text(flat[i : i + batch_size]) for i in range(0, len(flat), batch_size)]
    )
    return EntityCorpus(tuple(entities), pool_prompts(feats, [len(g) for g in prompts]))

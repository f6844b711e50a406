"""CLIP's byte-level BPE tokenizer without torch or open_clip, and its file format: part of
the serving contract, beside `contract.py`.

`alt export onnx` writes `tokenizer.json` next to the graphs (`tokenizer_spec`: the
vocabulary in id order, the merges in rank order, the byte-to-symbol table, the word
pattern, the special tokens, the context length), taken from the checkpoint's own open_clip
tokenizer; `BpeTokenizer` reads it where torch is absent (the ONNX Runtime backend). Tests
hold the two to open_clip's output.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import regex


def _clean(text: str) -> str:
    """What CLIP's tokenizer does to text before splitting it: fix mojibake, unescape HTML
    (twice, as entities may be escaped twice), collapse whitespace, lowercase."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # pragma: no cover - ftfy ships with the server's dependencies
        pass
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class BpeTokenizer:
    def __init__(self, spec: dict) -> None:
        self.context_length = int(spec["context_length"])
        self.sot, self.eot = int(spec["sot"]), int(spec["eot"])
        self.ids = {token: i for i, token in enumerate(spec["vocab"])}
        self.ranks = {tuple(pair): r for r, pair in enumerate(spec["merges"])}
        self.byte_symbols = [spec["byte_symbols"][b] for b in range(256)]
        self.pattern = regex.compile(spec["pattern"], regex.IGNORECASE)
        self._bpe = lru_cache(maxsize=65536)(self._merge)

    @classmethod
    def load(cls, path: Path) -> BpeTokenizer:
        return cls(json.loads(Path(path).read_text()))

    def _merge(self, word: str) -> tuple[str, ...]:
        """One word's symbols merged, lowest-ranked adjacent pair first, until none ranks."""
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = {(a, b) for a, b in zip(parts, parts[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(parts)

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for word in self.pattern.findall(_clean(text)):
            symbols = "".join(self.byte_symbols[b] for b in word.encode("utf-8"))
            out.extend(self.ids[t] for t in self._bpe(symbols))
        return out

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Token ids `(N, context_length)` int64: start, the text, end, zero padding; a text
        too long is cut and still ends with the end token."""
        out = np.zeros((len(texts), self.context_length), np.int64)
        for row, text in enumerate(texts):
            tokens = [self.sot, *self.encode(text), self.eot][: self.context_length]
            tokens[-1] = self.eot
            out[row, : len(tokens)] = tokens
        return out


def tokenizer_spec(tok) -> dict:
    """What a torch-free CLIP tokenizer needs (`BpeTokenizer`), from open_clip's own
    `SimpleTokenizer`: the vocabulary in id order, the merges in rank order, the byte-to-symbol
    table, the word pattern, the special tokens and the context length."""
    vocab = [""] * len(tok.encoder)
    for token, i in tok.encoder.items():
        vocab[i] = token
    return {
        "context_length": tok.context_length,
        "sot": tok.sot_token_id,
        "eot": tok.eot_token_id,
        "pattern": tok.pat.pattern,
        "byte_symbols": [tok.byte_encoder[b] for b in range(256)],
        "vocab": vocab,
        "merges": [list(m) for m in sorted(tok.bpe_ranks, key=tok.bpe_ranks.get)],
    }

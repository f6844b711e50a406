"""The token-merging schedule: how many tokens merge in each layer, and how many remain.
Plain integers, no torch: the cost accounting (`alt info`) uses it too."""

from __future__ import annotations


def parse_schedule(num_layers: int, r: int, explicit: tuple[int, ...] = ()) -> list[int]:
    """Tokens to merge per layer: `explicit` (one entry per layer) when given, else `r` in
    every layer (ToMe's constant schedule)."""
    if explicit:
        if len(explicit) != num_layers:
            raise ValueError(
                f"merge schedule has {len(explicit)} entries for a {num_layers}-layer ViT"
            )
        return [int(v) for v in explicit]
    return [r] * num_layers


def clip_r(num_tokens: int, r: int) -> int:
    """At most half of the patch tokens (class token excluded) can merge in one layer."""
    return max(0, min(r, (num_tokens - 1) // 2))


def token_counts(num_tokens: int, schedule: list[int]) -> list[int]:
    """Token count entering each layer, plus the final count: `len(schedule) + 1` entries."""
    counts = [num_tokens]
    for r in schedule:
        counts.append(counts[-1] - clip_r(counts[-1], r))
    return counts

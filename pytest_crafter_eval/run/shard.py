"""Stage: run (shards). `--shard K/N`: which collected items this machine runs.

Pure: `parse(text)` checks the option; `assign(keys, n)` gives each episode its shard.
Episodes are ordered by (eval file, model, seed) and dealt out in turn, so the N parts
are disjoint, their union is the whole run, every shard gets the same number of
episodes give or take one, and so does every model within every shard: a shard's
metrics are not skewed toward one model. The deal depends only on the set of episodes,
not on the order pytest collected them in, so every machine (and every xdist worker)
computes the same split. Everything else (payload snapshot items, ordinary tests) runs
in shard 1.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int


def parse(text: str) -> Shard:
    """`K/N` with 1 <= K <= N; ValueError with a readable message otherwise."""
    match = _SHARD.fullmatch(str(text))
    if match is None:
        raise ValueError(f"expected K/N, like 1/4, got {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"expected K/N with 1 <= K <= N, got {text!r}")
    return Shard(index, count)


def assign(keys: Sequence[Hashable], count: int) -> list[int]:
    """The 1-based shard of each key (an episode's sortable (path, model, seed)), in the
    order given: the keys sorted, then dealt round-robin."""
    order = sorted(range(len(keys)), key=lambda i: keys[i])  # type: ignore[return-value,arg-type]
    shards = [0] * len(keys)
    for position, i in enumerate(order):
        shards[i] = position % count + 1
    return shards

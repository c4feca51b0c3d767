"""s1's selection: until N are chosen, pick a domain uniformly at random, rank its questions by
trace length (longest = rank 0), draw one with weight 2^-rank, remove it; drop empty domains.

A global step (it sees every shard at once), so it is a plain function rather than a datatrove
step. Weights below 2^-64 of the top one are left out: they are never drawn in practice, and
leaving them out keeps each draw O(64) instead of O(domain size)."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

from thinkscale.configs import check_at_least

TOP = 64


@dataclass
class SelectConfig:
    select: int = 1000  # how many to keep (seeded by the pipeline's --seed)

    def validate(self) -> None:
        check_at_least(self, 1, "select")


def s1_select(
    rows: list[dict], n: int, seed: int = 0, length_key: str = "trace_tokens"
) -> list[dict]:
    """The chosen rows, in the order drawn. Rows need `domain` (missing: one `unknown` domain)
    and `length_key`. Deterministic for a seed whatever order the rows arrive in."""
    if n > len(rows):
        print(f"warning: --select {n} is more than the {len(rows)} questions left; keeping all of them",
              file=sys.stderr)  # fmt: skip
        n = len(rows)
    by_domain: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        by_domain.setdefault(str(r.get("domain") or "unknown"), []).append(r)
    for pool in by_domain.values():
        pool.sort(key=lambda r: -int(r[length_key]))  # stable: ties keep id order
    rng = random.Random(seed)
    weights = [2.0**-rank for rank in range(TOP)]
    chosen: list[dict] = []
    while len(chosen) < n:
        domain = rng.choice(sorted(by_domain))
        pool = by_domain[domain]
        top = min(len(pool), TOP)
        index = rng.choices(range(top), weights=weights[:top])[0]
        chosen.append(pool.pop(index))
        if not pool:
            del by_domain[domain]
    return chosen

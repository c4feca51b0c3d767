import random
from collections import Counter

from thinkscale.data.select import s1_select


def pool():
    rows = []
    for domain, size in (("algebra", 30), ("geometry", 10), ("physics", 5)):
        for i in range(size):
            rows.append({"id": f"{domain}-{i}", "domain": domain, "trace_tokens": 100 + 10 * i})
    return rows


def test_seeded_and_independent_of_input_order():
    rows = pool()
    a = [r["id"] for r in s1_select(rows, 12, seed=3)]
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    assert a == [r["id"] for r in s1_select(shuffled, 12, seed=3)]
    assert a != [r["id"] for r in s1_select(rows, 12, seed=4)]
    assert len(set(a)) == 12  # drawn without replacement


def test_domains_near_uniform_and_longer_traces_preferred():
    domains, picks, first = Counter(), Counter(), Counter()
    runs = 400
    for seed in range(runs):
        chosen = s1_select(pool(), 6, seed=seed)
        domains.update(r["domain"] for r in chosen)
        picks.update(r["id"] for r in chosen)
        first.update([next((r["id"] for r in chosen if r["domain"] == "algebra"), None)])
    # 6 draws per run over 3 non-empty domains: ~2 each, whatever the domain sizes (30/10/5)
    for d in ("algebra", "geometry", "physics"):
        assert abs(domains[d] / runs - 2.0) < 0.25, domains
    # within a domain, rank 0 (longest) beats rank 1 beats the shortest
    assert picks["algebra-29"] > picks["algebra-28"] > picks["algebra-0"]
    # the first draw from a domain takes rank r with probability ~2^-(r+1): 1/2, 1/4, 1/8
    for rank, expected in ((0, 0.5), (1, 0.25), (2, 0.125)):
        drawn = runs - first[None]  # runs that drew from algebra at all
        assert abs(first[f"algebra-{29 - rank}"] / drawn - expected) < 0.07, first


def test_empty_domains_are_dropped_and_everything_is_taken_if_asked(capsys):
    rows = pool()
    chosen = s1_select(rows, 45, seed=0)
    assert sorted(r["id"] for r in chosen) == sorted(r["id"] for r in rows)
    assert s1_select(rows, 100, seed=0) and "more than the 45" in capsys.readouterr().err

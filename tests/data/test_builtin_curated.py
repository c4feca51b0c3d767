"""The shipped `curated-1k` set is what `thinkscale data curate` selected: check what it promises."""

from collections import Counter

from thinkscale.data.decontaminate import DecontaminateConfig, question_ngram_hashes
from thinkscale.data.traces import load_traces
from thinkscale.tasks import get_task


def test_curated_1k_loads_as_traces_and_is_decontaminated():
    rows = load_traces("curated-1k")
    assert len(rows) == 1000 and len({r["id"] for r in rows}) == 1000
    assert all(r["question"] and r["thinking"] and r["answer"] and r["domain"] for r in rows)
    cfg = DecontaminateConfig().datatrove()
    evals = set()
    for name in ("gsm8k", "math500"):
        for ex in get_task(name).load():
            evals.update(question_ngram_hashes(ex.question, cfg))
    assert not any(evals.intersection(question_ngram_hashes(r["question"], cfg)) for r in rows)
    per_domain = Counter(r["domain"] for r in rows)
    assert len(per_domain) > 30 and max(per_domain.values()) < 60  # spread over domains

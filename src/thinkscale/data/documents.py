"""Traces as datatrove documents: the question is the text every stage looks at, the rest of the
trace rides in metadata. A stage's folder holds `kept/` and `dropped/` JSONL shards, one per task."""

from __future__ import annotations

import json
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.word_tokenizers import WordTokenizer

from thinkscale.records import write_jsonl_atomic

SHARD = "${rank}.jsonl"


class WhitespaceTokenizer(WordTokenizer):
    """Words are whitespace-separated runs: s1's n-grams, and no NLTK data to download offline."""

    def __init__(self) -> None:
        super().__init__("whitespace")

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [s for s in text.split("\n") if s.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        spans, start = [], 0
        for sentence in self.sent_tokenize(text):
            start = text.index(sentence, start)
            spans.append((start, start + len(sentence)))
            start += len(sentence)
        return spans


def to_document(row: dict) -> Document:
    meta = {k: v for k, v in row.items() if k not in ("id", "question")}
    return Document(text=row["question"], id=str(row["id"]), metadata=meta)


def to_row(doc: Document | dict) -> dict:
    """A trace back from a document (or from the dict a JSONL shard holds)."""
    if isinstance(doc, Document):
        text, doc_id, meta = doc.text, doc.id, doc.metadata
    else:
        text, doc_id, meta = doc["text"], doc["id"], doc.get("metadata", {})
    return {"id": doc_id, "question": text, **meta}


def reader(folder: Path, glob: str = "*.jsonl") -> JsonlReader:
    return JsonlReader(
        str(folder), glob_pattern=glob, compression=None, doc_progress=False, add_file_path=False
    )


class ReasonWriter(JsonlWriter):
    """A JSONL shard writer that stamps a drop reason on documents that do not carry one."""

    def __init__(self, folder: str, reason: str | None = None):
        super().__init__(folder, output_filename=SHARD, compression=None)
        self.reason = reason

    def write(self, document: Document, rank: int = 0, **kwargs) -> None:
        if self.reason and "filter_reason" not in document.metadata:
            document.metadata["filter_reason"] = self.reason
        super().write(document, rank, **kwargs)


def writer(folder: Path, reason: str | None = None) -> JsonlWriter:
    return ReasonWriter(str(folder), reason)


def read_rows(folder: Path) -> list[dict]:
    """Every row of a folder's JSONL shards, in shard then line order."""
    rows = []
    for path in sorted(Path(folder).rglob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            rows.extend(to_row(json.loads(line)) for line in f if line.strip())
    return rows


def write_shards(rows: list[dict], folder: Path, shards: int) -> None:
    """Rows split into `shards` contiguous JSONL files in datatrove's document shape."""
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-len(rows) // shards) if rows else 0
    for rank in range(shards):
        part = rows[rank * per : (rank + 1) * per]
        write_jsonl_atomic(
            folder / f"{rank:05d}.jsonl",
            ({"text": d.text, "id": d.id, "metadata": d.metadata} for d in map(to_document, part)),
        )

import json

import pytest

from thinkscale import ThinkscaleError
from thinkscale.data import difficulty as difficulty_mod
from thinkscale.data.curate import CurateConfig, curate
from thinkscale.data.difficulty import DifficultyConfig, model_slug
from thinkscale.data.domain import DomainConfig, EmbeddingClassifier, classify
from thinkscale.data.executors import ExecutorConfig

ROWS = [
    {"id": "q1", "question": "What is 12 + 30?", "thinking": "12 and 30 is 42", "answer": "42"},
    {"id": "q2", "question": "What is 7 * 6?", "thinking": "seven sixes are 42", "answer": "42"},
    {
        "id": "q3",
        "question": "What is 9 - 4?",
        "thinking": "nine minus four is five",
        "answer": "5",
    },
]


def traces(tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return str(path)


def lines(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_difficulty_runs_the_engine_records_and_resumes(tmp_path, tiny_checkpoint):
    model = str(tiny_checkpoint)
    cfg = CurateConfig(data=[traces(tmp_path)], out=str(tmp_path / "out"), stages=["difficulty"],
                       tokenizer=model,
                       difficulty=DifficultyConfig(models=[model], max_tokens=8))  # fmt: skip
    curate(cfg, progress=False)
    kept = lines(tmp_path / "out" / "data.jsonl")
    slug = model_slug(model)
    assert len(kept) == 3  # a random model solves nothing
    for row in kept:
        assert row[f"solved_by_{slug}"] is False
        assert row["trace_tokens"] == len(row["thinking"]) + 1 + len(
            row["answer"]
        )  # char tokenizer
    answers = list(
        (tmp_path / "out" / "stages" / "01-difficulty" / "answers").rglob(f"{slug}.jsonl")
    )
    assert answers and sum(len(lines(p)) for p in answers) == 3  # one graded answer per question
    # a rerun of an unfinished stage finds the answers already there and generates nothing more
    (tmp_path / "out" / "stages" / "01-difficulty" / "done.json").unlink()
    for p in (tmp_path / "out" / "stages" / "01-difficulty" / "logs" / "completions").glob("*"):
        p.unlink()
    stamps = [p.stat().st_mtime_ns for p in answers]
    curate(cfg, progress=False)
    assert [p.stat().st_mtime_ns for p in answers] == stamps


def test_solved_questions_are_dropped_with_the_model_in_the_reason(
    tmp_path, tiny_checkpoint, monkeypatch
):
    model = str(tiny_checkpoint)
    monkeypatch.setattr(difficulty_mod, "solved_by",
                        lambda rows, m, cfg, work: {r["id"]: r["id"] == "q2" for r in rows})  # fmt: skip
    cfg = CurateConfig(data=[traces(tmp_path)], out=str(tmp_path / "out"), stages=["difficulty"],
                       tokenizer=model, executor=ExecutorConfig(tasks=1),
                       difficulty=DifficultyConfig(models=[model]))  # fmt: skip
    report = curate(cfg, progress=False)
    assert report["stages"][-1]["dropped"] == {f"solved_by_{model_slug(model)}": 1}
    assert [r["id"] for r in lines(tmp_path / "out" / "data.jsonl")] == ["q1", "q3"]


def test_unknown_reference_model_is_a_clear_error(tmp_path):
    cfg = CurateConfig(data=[traces(tmp_path)], out=str(tmp_path / "out"), stages=["difficulty"],
                       difficulty=DifficultyConfig(models=[str(tmp_path / "no-such-model")]))  # fmt: skip
    with pytest.raises(ThinkscaleError):
        curate(cfg, progress=False)


def test_embedding_classifier_finds_the_obvious_domains():
    labels = EmbeddingClassifier()([
        "How many prime numbers are there below 50, and what is the remainder of 2^10 mod 7?",
        "A triangle has sides 3, 4 and 5. What is the radius of its inscribed circle?",
        "Two fair dice are rolled. What is the probability that the sum is 7?",
        "Balance the chemical reaction of methane burning in oxygen: how many moles of water?",
    ])  # fmt: skip
    assert labels == ["11 Number theory", "51 Geometry",
                      "60 Probability theory and stochastic processes", "chemistry"]  # fmt: skip


def test_domain_from_the_dataset_field_and_a_custom_classifier():
    rows = [
        {"id": "a", "question": "x", "subject": "Algebra"},
        {"id": "b", "question": "y", "subject": "Geometry"},
    ]
    assert classify(rows, DomainConfig(classifier="field", domain_field="subject")) == [
        "Algebra",
        "Geometry",
    ]
    with pytest.raises(ThinkscaleError, match="no 'topic'"):
        classify(rows, DomainConfig(classifier="field", domain_field="topic"))
    assert classify(rows, DomainConfig(classifier="builtins:list")) == ["x", "y"]  # list(questions)

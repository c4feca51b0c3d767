"""Graders beyond math: short factual answers (qa: SQuAD normalisation, aliases, token F1) and
multiple choice (letter extraction, options from fields or the question, seeded shuffles)."""

from __future__ import annotations

import json

import pytest

from thinkscale import ThinkscaleError
from thinkscale.tasks import FileTask, get_task
from thinkscale.tasks.choice import LETTERS, extract_choice, gold_letter, parse_options, shuffle
from thinkscale.tasks.extract import extract_short
from thinkscale.tasks.grading import grade, normalize_answer, qa_equal, qa_f1


@pytest.mark.parametrize("text,norm", [
    ("The Eiffel Tower", "eiffel tower"),
    ("  an  Apple, a day!", "apple day"),
    ("U.S.A.", "usa"),
    ("Nile River.", "nile river"),
    ("“Hamlet”", "hamlet"),
    ("THE", ""),
])  # fmt: skip
def test_squad_normalisation(text, norm):
    assert normalize_answer(text) == norm


def test_qa_exact_match_over_aliases():
    assert grade("qa", "the nile", ["Nile River", "Nile"])
    assert grade("qa", "Mt. Everest", ["Mount Everest", "Mt. Everest"])
    assert not grade("qa", "Amazon", ["Nile", "the Nile"])
    assert not qa_equal("the", "The")  # nothing left after normalisation is never a match
    assert not grade("qa", None, "Nile")


def test_token_f1_by_hand():
    # pred "eiffel tower in paris" vs "Eiffel Tower": common 2, precision 2/4, recall 2/2 -> 2/3
    assert qa_f1("Eiffel Tower in Paris", "Eiffel Tower") == pytest.approx(2 / 3)
    # best alias wins: "george washington" vs ["Washington", "George Washington"] -> 1.0
    assert qa_f1("George Washington", ["Washington", "George Washington"]) == 1.0
    # "washington" vs "George Washington": precision 1, recall 1/2 -> 2/3
    assert qa_f1("Washington", "George Washington") == pytest.approx(2 / 3)
    assert qa_f1("Paris", "Rome") == 0.0 and qa_f1(None, "Rome") == 0.0


def test_short_answer_extraction():
    assert extract_short("Canberra.") == "Canberra"
    assert extract_short("I think so.\nAnswer: Ottawa") == "Ottawa"
    assert extract_short("Answer: \\boxed{Au}") == "Au"
    assert extract_short("") is None
    assert extract_short("Final Answer:") is None  # a forced prefix the model left empty


OPTS = ["red", "green", "blue", "yellow"]
CHOICE_CASES = [
    ("Answer: C", "C"), ("answer: c", "C"), ("\\boxed{B}", "B"), ("\\boxed{(d)}", "D"),
    ("(c)", "C"), ("c", "C"), ("B.", "B"), ("The answer is (A).", "A"), ("the answer is d", "D"),
    ("A and B are wrong, so C", "C"), ("A is wrong and B is wrong; D", "D"),
    ("The correct option is B.", "B"), ("I choose D", "D"), ("I think it is blue", "C"),
    ("green", "B"), ("Yellow.", "D"), ("B) green", "B"), ("Option C is correct.", "C"),
    ("A cat is green, so the answer is (B)", "B"), ("Final Answer: \\boxed{A}", "A"),
    ("E", None), ("I do not know", None), ("", None), ("Answer: (E)", None),
]  # fmt: skip


@pytest.mark.parametrize("text,letter", CHOICE_CASES)
def test_choice_extraction(text, letter):
    assert extract_choice(text, OPTS) == letter


def test_options_from_a_string_and_a_question():
    assert parse_options("A) 12 , B) 16 , C) 18") == ["12", "16", "18"]
    assert parse_options("(a) x (b) y") == ["x", "y"]
    assert parse_options("B) x C) y") is None  # must start at A


def test_gold_letter_forms_and_errors():
    assert gold_letter(2, OPTS, "f") == "C" and gold_letter("b", OPTS, "f") == "B"
    assert gold_letter("Blue", OPTS, "f") == "C"
    with pytest.raises(ThinkscaleError, match="not one of the options A, B, C, D"):
        gold_letter("F", OPTS, "f")
    with pytest.raises(ThinkscaleError, match="outside the 4 options"):
        gold_letter(4, OPTS, "f")


def test_shuffle_keeps_the_gold_on_the_same_option():
    for seed in range(20):
        for gold in "ABCD":
            new, order, new_gold = shuffle(OPTS, gold, seed, "q1")
            assert sorted(new) == sorted(OPTS) and [OPTS[i] for i in order] == new
            assert new[LETTERS.index(new_gold)] == OPTS[LETTERS.index(gold)]
    orders = {tuple(shuffle(OPTS, "A", s, "q1")[1]) for s in range(20)}
    assert len(orders) > 5  # the seed changes the permutation
    assert shuffle(OPTS, "A", 3, "q1") == shuffle(OPTS, "A", 3, "q1")  # and fixes it


def _write(tmp_path, rows):
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_file_task_choice_from_field_dict_and_question(tmp_path):
    path = _write(tmp_path, [
        {"q": "Sky?", "opts": ["red", "blue"], "a": "B"},
        {"q": "Grass?", "opts": {"A": "green", "B": "pink"}, "a": 0},
    ])  # fmt: skip
    exs = FileTask(path, "q", "a", grader="choice", choices_field="opts").load()
    assert [e.gold for e in exs] == ["B", "A"] and exs[1].meta["choices"] == ["green", "pink"]
    task = FileTask(path, "q", "a", grader="choice", choices_field="opts")
    assert "A. red\nB. blue" in task.prompt(exs[0]) and "letter" in task.prompt(exs[0])
    inline = _write(tmp_path, [{"q": "Which is even? A) 3 B) 4 C) 5", "a": "B"}])
    ex = FileTask(inline, "q", "a", grader="choice").load()[0]
    assert ex.question == "Which is even?" and ex.meta["choices"] == ["3", "4", "5"]


def test_file_task_shuffle_records_the_permutation(tmp_path):
    path = _write(tmp_path, [{"q": f"Q{i}?", "opts": OPTS, "a": "C"} for i in range(10)])
    exs = FileTask(path, "q", "a", grader="choice", choices_field="opts", shuffle_choices=True, seed=1).load()
    for e in exs:
        assert e.meta["choices"][LETTERS.index(e.gold)] == "blue"
        assert [OPTS[i] for i in e.meta["choice_order"]] == e.meta["choices"]
    assert len({tuple(e.meta["choice_order"]) for e in exs}) > 1


@pytest.mark.parametrize("rows,kw,message", [
    ([{"q": "Sky?", "a": "B"}], {}, "mc.jsonl:1: field 'q': --grader choice needs options"),
    ([{"q": "Sky?", "opts": ["red", "blue"], "a": "E"}], {"choices_field": "opts"}, "mc.jsonl:1: field 'a': answer 'E' is not one of the options A, B"),
    ([{"q": "Sky?", "opts": ["red"], "a": "A"}], {"choices_field": "opts"}, "mc.jsonl:1: field 'opts': needs 2 to 10 options"),
    ([{"q": "Sky?", "a": "B"}], {"choices_field": "opts"}, "mc.jsonl:1: missing field 'opts'"),
])  # fmt: skip
def test_file_task_choice_errors_name_file_line_field(tmp_path, rows, kw, message):
    with pytest.raises(ThinkscaleError, match=message.replace("(", r"\(")):
        FileTask(_write(tmp_path, rows), "q", "a", grader="choice", **kw).load()


def test_empty_alias_list_is_an_error(tmp_path):
    path = _write(tmp_path, [{"q": "Capital?", "a": []}])
    with pytest.raises(ThinkscaleError, match="mc.jsonl:1: field 'a'"):
        FileTask(path, "q", "a", grader="qa").load()


def test_source_filter_and_split(tmp_path):
    rows = [{"q": f"q{i}", "a": "x", "source": "cwq" if i % 2 else "simpleqa"} for i in range(6)]
    path = _write(tmp_path, rows)
    exs = FileTask(path, "q", "a", grader="qa", source_filter=["cwq"]).load()
    assert [e.meta["source"] for e in exs] == ["cwq"] * 3
    with pytest.raises(ThinkscaleError, match="empty dataset"):
        FileTask(path, "q", "a", grader="qa", source_filter=["nothing"]).load()
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(rows[:4]), "test": Dataset.from_list(rows[4:])}).save_to_disk(tmp_path / "ds")
    assert len(FileTask(tmp_path / "ds", "q", "a", grader="qa", split="test").load()) == 2
    with pytest.raises(ThinkscaleError, match="no split 'dev'"):
        FileTask(tmp_path / "ds", "q", "a", grader="qa", split="dev").load()


def test_real_data_gold_against_itself_and_wrong_options():
    """README's real-data check: every alias of the shipped factual set grades correct against its
    own list and no other question's answer does; on mmlu-stem the gold letter (and the gold
    option's text) is always correct and every other letter never is."""
    qa = get_task("factual-qa").load()
    assert len(qa) == 40
    assert all(grade("qa", alias, e.gold) for e in qa for alias in e.gold)
    assert not any(grade("qa", other.gold[0], e.gold) for e in qa for other in qa if other is not e)
    task = get_task("mmlu-stem")
    mc = task.load()
    assert len(mc) == 3018
    for e in mc:
        opts = e.meta["choices"]
        assert grade("choice", task.extract(f"Answer: {e.gold}", e), e.gold)
        assert all(not grade("choice", x, e.gold) for x in LETTERS[: len(opts)] if x != e.gold)
    hits = sum(task.extract(e.meta["choices"][LETTERS.index(e.gold)], e) == e.gold for e in mc)
    assert hits / len(mc) > 0.9, hits  # the option's text alone (some options repeat words of others)

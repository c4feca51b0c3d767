"""The hybrid format (Thinkless): control tokens as ordinary tokens, a template that neither
pre-fills a mode nor strips thinking, and splitting a completion by the mode it ran in."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import CHATML, make_model, make_tokenizer
from thinkscale import ThinkscaleError
from thinkscale.formats import HYBRID_CHAT_TEMPLATE, check_hybrid_template, get_format
from thinkscale.models import add_format_tokens, check_format_tokens, init_new_embeddings

HYBRID = get_format("hybrid")


def hybrid_tokenizer():
    tok = make_tokenizer()
    assert add_format_tokens(tok, HYBRID.added_tokens) == ["<think>", "</think>", "<short>"]
    return tok


def test_control_tokens_are_one_id_each_and_survive_save_load(tmp_path):
    tok = hybrid_tokenizer()
    ids = [tok.encode(t, add_special_tokens=False) for t in HYBRID.added_tokens]
    assert all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == 3
    assert all(tok.decode(i) == t for i, t in zip(ids, HYBRID.added_tokens))
    # ordinary tokens: not special, so decoding with skip_special_tokens keeps them
    text = "<think>\n1+2</think>\n\n3<short>\n3"
    assert tok.decode(tok.encode(text, add_special_tokens=False), skip_special_tokens=True) == text
    assert add_format_tokens(tok, HYBRID.added_tokens) == []  # already there: nothing added twice
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert [again.encode(t, add_special_tokens=False) for t in HYBRID.added_tokens] == ids
    check_format_tokens(again, HYBRID.added_tokens)
    with pytest.raises(ThinkscaleError, match="has no token <think>, </think>, <short>"):
        check_format_tokens(make_tokenizer(), HYBRID.added_tokens, "m")


def test_prompt_ends_exactly_at_the_assistant_header():
    tok = hybrid_tokenizer()
    assert check_hybrid_template(tok, HYBRID) is None  # ChatML: kept
    auto = HYBRID.render_prompt(tok, "q?")
    assert auto.endswith("<|im_start|>assistant\n")  # no mode token: the model chooses
    assert HYBRID.render_prompt(tok, "q?", mode="think") == auto + "<think>\n"
    assert HYBRID.render_prompt(tok, "q?", mode="short") == auto + "<short>\n"


@pytest.mark.parametrize("template, problem", [
    (CHATML.replace("'<|im_start|>assistant\n'", "'<|im_start|>assistant\n<think>\n'"), "pre-fills a mode"),
    (CHATML.replace("message['content']", "message['content'].split('</think>')[-1]"), "strips thinking"),
])  # fmt: skip
def test_a_template_that_prefills_or_strips_is_replaced(template, problem):
    tok = hybrid_tokenizer()
    tok.chat_template = template
    note = check_hybrid_template(tok, HYBRID)
    assert note is not None and problem in note
    assert tok.chat_template == HYBRID_CHAT_TEMPLATE
    assert check_hybrid_template(tok, HYBRID) is None
    assert HYBRID.render_prompt(tok, "q?").endswith("<|im_start|>assistant\n")


def test_render_and_split_by_mode():
    assert HYBRID.render_assistant("1+2=3", "3") == "<think>\n1+2=3\n</think>\n\n3"
    assert HYBRID.render_assistant("", "3") == "<short>\n3"
    assert HYBRID.render_assistant("ignored", "3", mode="short") == "<short>\n3"
    assert HYBRID.split("<think>\n1+2=3\n</think>\n\n3") == ("1+2=3", "3")
    assert HYBRID.split("<short>\n3") == ("", "3")
    assert HYBRID.split("1+2=3\n</think>\n\nFinal Answer: 3", "think") == ("1+2=3", "Final Answer: 3")  # forced
    assert HYBRID.split("3", "short") == ("", "3")
    assert HYBRID.split("just 3", "none") == ("", "just 3")
    assert HYBRID.split("so 3</think>3", "none") == ("so 3", "3")


def test_new_embedding_rows_start_at_the_mean():
    tok = make_tokenizer()
    model = make_model(len(tok), dtype=torch.float32)
    old = model.get_input_embeddings().weight.detach().clone()
    added = add_format_tokens(tok, HYBRID.added_tokens)
    init_new_embeddings(model, tok, added)
    w = model.get_input_embeddings().weight
    assert w.shape[0] == len(tok) == old.shape[0] + 3
    assert torch.equal(w[: old.shape[0]], old)  # existing rows untouched
    for t in added:
        assert torch.allclose(w[tok.convert_tokens_to_ids(t)], old.mean(0))
    assert model.get_output_embeddings().weight.shape[0] == len(tok)  # tied: the head grew too


class _NoNewTokens:
    """A tokenizer that silently ignores add_tokens (e.g. a fixed vocabulary)."""

    def __init__(self):
        self.inner = make_tokenizer()

    def encode(self, text, add_special_tokens=False):
        return self.inner.encode(text, add_special_tokens=add_special_tokens)

    def decode(self, ids):
        return self.inner.decode(ids)

    def add_tokens(self, tokens):
        return 0


def test_a_tokenizer_that_cannot_take_new_tokens_is_refused():
    with pytest.raises(ThinkscaleError, match="cannot take new tokens: <think>, </think>, <short>"):
        add_format_tokens(_NoNewTokens(), HYBRID.added_tokens)

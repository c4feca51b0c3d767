"""Budget forcing inside vLLM's decode loop: a V1 logits processor with per-request settings
(`SamplingParams.extra_args["budget_forcing"]`), the same rules as `forcing.RowState`:

- thinking reached the cap          -> force [newline if missing] + delimiter + answer prefix;
- an attempt to end thinking         -> the first `num_ignore` times: force `Wait` instead;
- below `min_thinking`               -> end of thinking (and EOS) masked;
- EOS while thinking                 -> an attempt to end thinking (its mass moves to the delimiter);
- answer reached `max_answer_tokens` -> force EOS;
- a hybrid model choosing its mode   -> its first token decides (`<think>`: thinking, `<short>`:
                                        the answer, anything else: mode none), the control token's
                                        newline is forced; a forced mode starts in its phase.

A forced token is the only finite logit of its row, so it is taken at any temperature. The
engine learns which positions were forced through a side channel when the processor runs in its
process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, as `load_llm` sets): the processor appends each
forced position to `FORCED[channel]`. Otherwise (an engine process) the processed
log-probability of a forced token is exactly 0, which the engine reads back; asking vLLM for
log-probs cost most of the forcing overhead on vLLM (issue 23), hence the channel. "Would the model end thinking here?" is decided before sampling: greedy, by the
argmax; sampling, by a seeded draw with the probability the request's temperature / top-k / top-p
give to end-of-thinking and EOS (if the draw says no, they are masked and vLLM samples the rest).
Single-token end-of-thinking delimiters only (s1's `<|im_start|>`); the HF engine does more."""

from __future__ import annotations

import random
from collections import deque

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from thinkscale.infer.sampling import filtered_logits

KEY = "budget_forcing"
THINK, ANSWER, MODE = "think", "answer", "mode"
# channel -> output positions the processor forced (read and removed by the engine)
FORCED: dict[str, list[int]] = {}


class _Row:
    def __init__(self, params, output: list[int]):
        a = params.extra_args[KEY]
        self.end: int = a["end_think"]
        self.answer: list[int] = a["answer"]
        self.wait: list[int] = a["wait"]
        self.newline: list[int] = a["newline"]
        self.stop: list[int] = a["stop"]
        self.ends_with_newline = set(a["ends_with_newline"])
        self.cap: int = a["cap"]
        self.num_ignore: int = a["num_ignore"]
        self.min_thinking: int = a["min_thinking"]
        self.max_answer: int = a["max_answer"]
        self.greedy = params.temperature <= 1e-5
        self.temperature, self.top_p, self.top_k = params.temperature, params.top_p, params.top_k
        self.rng = random.Random(params.seed if params.seed is not None else 0)
        self.output, self.seen, self.last = output, 0, None
        # a hybrid model starts choosing its mode, or (forced short) in the answer
        self.phase, self.thinking, self.waits, self.answer_tokens = a.get("start", THINK), 0, 0, 0
        self.controls: dict[int, str] = {int(k): v for k, v in a.get("controls", {}).items()}
        self.control_tail: list[int] = a.get("control_tail", [])
        self.chosen: str | None = None  # the mode whose control token came, while its tail is forced
        self.queue: deque[int] = deque()
        self.channel: list[int] | None = FORCED.setdefault(a["channel"], []) if a.get("channel") else None

    def force(self, logits: torch.Tensor, token: int) -> None:
        _force(logits, token)
        if self.channel is not None and (not self.channel or self.channel[-1] != len(self.output)):
            self.channel.append(len(self.output))  # the position the next token takes

    def catch_up(self) -> None:
        """Account for the tokens vLLM appended since the last step (usually one)."""
        while self.seen < len(self.output):
            tok = self.output[self.seen]
            self.seen += 1
            if self.queue and tok == self.queue[0]:
                self.queue.popleft()
                if self.phase == THINK:
                    self.thinking += 1  # a forced Wait is thinking text
                elif self.phase == MODE and not self.queue:
                    self.phase = THINK if self.chosen == "think" else ANSWER
            elif self.phase == MODE:
                self.chosen = self.controls.get(tok)
                if self.chosen is None:  # no control token: answered as is
                    self.phase = ANSWER
                    self.answer_tokens += 1
                else:
                    self.queue.extend(self.control_tail)
                    if not self.queue:
                        self.phase = THINK if self.chosen == "think" else ANSWER
            elif self.phase == THINK:
                if tok == self.end:
                    self.phase = ANSWER
                    self.queue.extend(self.answer[1:])
                else:
                    self.thinking += 1
            else:
                self.answer_tokens += 1
            self.last = tok

    def constrain(self, logits: torch.Tensor, argmax: int | None = None) -> None:
        if self.phase == THINK and self.thinking >= self.cap:  # the cap wins over queued Waits
            self.queue.clear()
            self.phase = ANSWER
            if self.last is not None and self.last not in self.ends_with_newline:
                self.queue.extend(self.newline)
            self.queue.extend(self.answer)
        if self.phase == ANSWER and not self.queue and self.answer_tokens >= self.max_answer:
            self.queue.append(self.stop[0])
        if self.queue:
            self.force(logits, self.queue[0])
            return
        if self.phase != THINK:
            return
        ends = [self.end, *self.stop]
        if self.thinking < self.min_thinking:
            logits[ends] = float("-inf")
        elif self.waits < self.num_ignore:
            if self._attempts(logits, ends, argmax):
                self.waits += 1
                self.queue.extend(self.wait)
                self.force(logits, self.queue[0])
            elif not self.greedy:  # greedy: vLLM takes the argmax, which is no end token: no write
                logits[ends] = float("-inf")
        elif self.stop:  # accepted: an EOS attempt ends thinking through the delimiter
            logits[self.end] = torch.logsumexp(logits[ends], dim=0)
            logits[self.stop] = float("-inf")

    def needs_argmax(self) -> bool:
        return self.greedy and self.phase == THINK and self.waits < self.num_ignore

    def _attempts(self, logits: torch.Tensor, ends: list[int], argmax: int | None) -> bool:
        if self.greedy:
            return (argmax if argmax is not None else int(torch.argmax(logits))) in ends
        values, index = filtered_logits(logits, self.temperature, self.top_k, self.top_p)
        probs = values.softmax(-1)
        p_end = float(probs[torch.isin(index, torch.tensor(ends, device=index.device))].sum())
        return self.rng.random() < p_end


def _force(logits: torch.Tensor, token: int) -> None:
    logits.fill_(float("-inf"))
    logits[token] = 0.0


class BudgetForcingProcessor(LogitsProcessor):
    """vLLM V1 logits processor; requests without `extra_args["budget_forcing"]` pass through."""

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.rows: dict[int, _Row] = {}

    @classmethod
    def validate_params(cls, params) -> None:
        args = (params.extra_args or {}).get(KEY)
        if args is not None and not isinstance(args.get("end_think"), int):
            raise ValueError("budget_forcing needs a single-token end_think id")

    def is_argmax_invariant(self) -> bool:
        return False  # forcing changes what greedy decoding picks

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(
            self.rows,
            batch_update,
            lambda params, _prompt, output: (
                _Row(params, output) if params.extra_args and KEY in params.extra_args else None
            ),
        )

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.rows:
            return logits
        for row in self.rows.values():
            row.catch_up()
        # one batched argmax (before any row is changed) for the greedy rows that may end thinking
        argmax = (
            logits.argmax(dim=1).tolist()
            if any(r.needs_argmax() for r in self.rows.values())
            else None
        )
        for index, row in self.rows.items():
            row.constrain(logits[index], argmax[index] if argmax is not None else None)
        return logits

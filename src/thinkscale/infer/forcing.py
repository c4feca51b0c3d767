"""Budget forcing as per-sequence state inside one decode pass (s1's cap and extend, done once).

The state machine is pure token ids, in the spirit of nanochat's engine: each decode step a row
either takes the next token from its queue of forced tokens or proposes its sampled token, and the
machine decides what is actually fed. Triggers:
- thinking reached the cap      -> clear the queue, force [newline if missing] + answer delimiter
                                   + answer prefix (the cap counts thinking tokens only, exactly);
- an attempt to end thinking    -> the first `num_ignore` times: drop it and force `Wait`;
                                   after that: accept it and force the rest of the delimiter;
- below `min_thinking_tokens`   -> the engine masks end-of-thinking logits (single-token
                                   delimiters); a multi-token delimiter is dropped and `Wait` forced.
An end-of-sequence token during thinking is an attempt to end thinking too (s1 stops on both).
Hybrid formats (Thinkless) start a row that may choose its mode in a `mode` phase: the model's
first token decides (`<think>` -> thinking, with every rule above; `<short>` -> the answer, no
forcing; anything else -> mode `none`, answered as is), then the control token's newline is
forced. The control token and its newline are not thinking tokens, so the cap means the same in
every mode. A forced mode (`Budget.mode` think | short) starts in that phase directly.
A multi-token delimiter (e.g. `</think>` on a tokenizer without it as one token) is recognised
when its last token is proposed; its earlier tokens are already in the KV cache, so the machine
asks the engine to roll them back (the engine masks them out of attention).
Adaptive thinking (`Budget.adaptive`, see `adaptive.py`) adds a `probe` phase: every `every`
thinking tokens (and, for `confidence`, where the model starts a `Wait`) the row holds its
proposed token, feeds the forced answer text and up to `tokens` greedy answer tokens, then asks
the engine to roll all of them back (`hidden_rollback`) and goes on with the held token, or, when
the probes say the answer is settled and an end of thinking is allowed (Waits spent, minimum
reached), ends thinking there as the cap would (`stopped_by` adaptive). The cap still wins.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from thinkscale.infer.adaptive import AdaptiveRule, Probe, settled

THINK, ANSWER, DONE, MODE, PROBE = "think", "answer", "done", "mode", "probe"


@dataclass(frozen=True)
class ForcingTokens:
    """A format's delimiters, tokenized once for one tokenizer."""

    end_think: tuple[int, ...]  # token ids of the text that ends thinking
    answer: tuple[int, ...]  # delimiter + forced answer prefix, starting with end_think
    wait: tuple[int, ...]  # what replaces an ignored end of thinking
    newline: tuple[int, ...]  # inserted before a forced delimiter when missing
    stop: frozenset[int]  # end-of-sequence ids: end the answer; during thinking, end thinking
    ends_with_newline: frozenset[int]  # ids whose text ends with a newline
    thinks: bool = True
    controls: tuple[tuple[int, str], ...] = ()  # hybrid: (control token id, the mode it opens)
    control_tail: tuple[int, ...] = ()  # hybrid: forced after a chosen control token (newline)

    @classmethod
    def from_tokenizer(cls, tokenizer, fmt, wait: str = "Wait") -> ForcingTokens:
        enc = lambda s: tuple(tokenizer.encode(s, add_special_tokens=False))  # noqa: E731
        stop = {tokenizer.eos_token_id}
        for tok in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            tid = tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid is not None:
                stop.add(tid)
        stop.discard(None)
        vocab = tokenizer.get_vocab()
        newline_ids = frozenset(i for t, i in vocab.items() if t.endswith(("\n", "Ċ", "<0x0A>")))
        end_think = enc(fmt.think_end) if fmt.thinks else ()
        answer = enc(fmt.forced_answer()) if fmt.thinks else ()
        if fmt.thinks and answer[: len(end_think)] != end_think:
            # the delimiter merged with what follows it; treat the whole forced text as one unit
            end_think = answer[:1]
        controls: tuple[tuple[int, str], ...] = ()
        if fmt.hybrid:
            from thinkscale.models import check_format_tokens

            check_format_tokens(tokenizer, fmt.added_tokens, getattr(tokenizer, "name_or_path", "the model"))
            controls = tuple((enc(text.rstrip("\n"))[0], mode)
                             for mode, text in (("think", fmt.think_start), ("short", fmt.short_start)))  # fmt: skip
        return cls(
            end_think=end_think,
            answer=answer,
            wait=enc(wait),
            newline=enc("\n"),
            stop=frozenset(stop),
            ends_with_newline=newline_ids,
            thinks=fmt.thinks,
            controls=controls,
            control_tail=enc("\n") if controls else (),
        )


@dataclass
class Budget:
    """Per-request forcing settings (a sweep mixes them in one batch)."""

    max_thinking_tokens: int | None = None  # the cap; None = no cap
    num_ignore: int = 0  # times an end of thinking is replaced by Wait
    min_thinking_tokens: int = 0
    max_answer_tokens: int = 256
    max_total_tokens: int = 4096  # safety net when there is no cap
    mode: str | None = None  # hybrid formats: auto (the model chooses), think or short (forced)
    adaptive: AdaptiveRule | None = None  # end thinking early when probes say the answer is settled
    max_tokens: int | None = None  # a hard bound on all generated tokens (OpenAI's max_completion_tokens)

    @property
    def thinking_cap(self) -> int:
        """The cap every engine enforces: without a cap, the total-token safety net acts as one,
        so that every sample still gets an answer. The one place this rule is written."""
        if self.max_thinking_tokens is not None:
            return self.max_thinking_tokens
        return self.max_total_tokens

    def max_new_tokens(self, tokens: ForcingTokens, thinking: int | None = None) -> int:
        """The most tokens a sample under this budget can generate: `thinking` tokens (default:
        the thinking cap), a newline and the forced answer delimiter, the answer, an end token
        (and one spare)."""
        if not tokens.thinks:
            return self.max_answer_tokens
        thinking = self.thinking_cap if thinking is None else thinking
        control = 1 + len(tokens.control_tail) if tokens.controls else 0
        return control + thinking + len(tokens.newline) + len(tokens.answer) + self.max_answer_tokens + 2


@dataclass
class RowState:
    tokens: ForcingTokens
    budget: Budget
    phase: str = THINK
    generated: list[int] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)  # per generated token: forced or sampled
    queue: deque = field(default_factory=deque)
    thinking_tokens: int = 0
    answer_tokens: int = 0
    waits: int = 0
    capped: bool = False
    think_end_index: int | None = None  # len(generated) when thinking ended
    finish_reason: str | None = None
    rollback: int = 0  # fed tokens the engine must drop from the KV cache before the next feed
    mode: str | None = None  # hybrid: think | short | none (what this sample did)
    probes: list[Probe] = field(default_factory=list)  # adaptive: every finished probe
    probe_tokens: int = 0  # tokens fed or decoded by probes (compute, not output)
    adaptive_stop: bool = False  # thinking ended because the probes settled
    hidden_rollback: int = 0  # probe tokens the engine must drop from the KV cache (not output)
    _probe: Probe | None = None
    _probe_queue: deque = field(default_factory=deque)  # every token of a running probe is fed
    _held: int | None = None  # the row's own proposed token, fed after the probe
    _next_probe: int = 0

    def __post_init__(self) -> None:
        if self.budget.adaptive is not None:
            self._next_probe = self.budget.adaptive.every
        if self.tokens.controls:
            self.mode = self.budget.mode if self.budget.mode in ("think", "short") else None
            if self.mode is None:
                self.phase = MODE
            elif self.mode == "short":
                self.phase, self.think_end_index = ANSWER, 0
            return
        if not self.tokens.thinks:
            self.phase = ANSWER
            self.think_end_index = 0

    # -- what the engine asks -------------------------------------------------------------
    def forced_next(self) -> int | None:
        """The token this row must take next regardless of the model, if any."""
        if self.phase == PROBE:
            return self._probe_queue[0] if self._probe_queue else None
        self._enforce_cap()
        return self.queue[0] if self.queue else None

    def banned(self) -> tuple[int, ...]:
        """Token ids the engine must mask this step (end of thinking below the minimum)."""
        if self.phase == THINK and self.thinking_tokens < self.budget.min_thinking_tokens:
            ids = tuple(self.tokens.stop)
            if len(self.tokens.end_think) == 1:
                ids += self.tokens.end_think
            return ids
        return ()

    @property
    def probing(self) -> bool:
        """A probe is running: the engine picks greedily and passes each pick's probability."""
        return self.phase == PROBE

    def step(self, proposed: int, prob: float | None = None) -> int | None:
        """Decide the token fed this step (None: the row is done). The engine reads and clears
        the rollbacks afterwards: that many already-fed tokens leave the context. `prob`: the
        probability of `proposed` (read by probes)."""
        token = self._step(proposed, prob)
        limit = self.budget.max_tokens
        if limit is not None and not self.done and len(self.generated) >= limit:
            self.finish("length")  # thinking included, as OpenAI counts reasoning tokens
        return token

    def _step(self, proposed: int, prob: float | None) -> int | None:
        if self.phase == PROBE:
            return self._probe_step(proposed, prob)
        self._enforce_cap()
        if self.queue:
            token = self.queue.popleft()
            self._append(token, forced=True)
            if self.phase == MODE and not self.queue:
                self._begin_mode()
            return token
        if self.phase == MODE:
            return self._choose_mode(proposed)
        if self.phase == THINK:
            if self._probe_due(proposed):
                return self._start_probe(proposed)
            return self._think(proposed)
        return self._answer(proposed)

    # -- phases ---------------------------------------------------------------------------
    def _choose_mode(self, token: int) -> int | None:
        """The model's first token of a hybrid turn: a control token opens its mode (then its
        newline is forced); any other token means no mode (`none`): it is answered as is."""
        mode = dict(self.tokens.controls).get(token)
        if mode is None:
            self.mode = "none"
            self.phase, self.think_end_index = ANSWER, 0
            return self._answer(token)
        self.mode = mode
        self._append(token, forced=False)
        self.queue.extend(self.tokens.control_tail)
        if not self.queue:
            self._begin_mode()
        return token

    def _begin_mode(self) -> None:
        if self.mode == "think":
            self.phase = THINK
        else:
            self.phase, self.think_end_index = ANSWER, len(self.generated)

    def _think(self, token: int) -> int | None:
        end = self.tokens.end_think
        rollback = 0
        attempt = token in self.tokens.stop
        if not attempt and end:
            k = len(end)
            if k == 1:
                attempt = token == end[0]
            elif token == end[-1] and tuple(self._think_tail(k - 1)) == end[:-1]:
                attempt, rollback = True, k - 1
        if not attempt:
            self.thinking_tokens += 1
            self._append(token, forced=False)
            return token
        below_min = self.thinking_tokens - rollback < self.budget.min_thinking_tokens
        if self.waits < self.budget.num_ignore or below_min:
            if not below_min:
                self.waits += 1
            self._rollback(rollback)
            self.queue.extend(self.tokens.wait)
            return self.step(token)
        # accepted: thinking ends here
        if token in self.tokens.stop:
            self._force_answer(capped=False)  # drop the EOS, force the delimiter
            return self.step(token)
        self.think_end_index = len(self.generated) - rollback
        self.thinking_tokens -= rollback
        self.phase = ANSWER
        self._append(token, forced=False)
        self.queue.extend(self.tokens.answer[len(end) :])
        return token

    def _answer(self, token: int) -> int | None:
        if token in self.tokens.stop:
            return self.finish("stop")
        self.answer_tokens += 1
        self._append(token, forced=False)
        if self.answer_tokens >= self.budget.max_answer_tokens:
            self.finish("length")
        return token

    # -- adaptive thinking: a probe branches off, answers, and is taken back ------------------
    def _probe_due(self, proposed: int) -> bool:
        rule = self.budget.adaptive
        if rule is None or not self.thinking_tokens:
            return False
        at_wait = rule.on_wait and bool(self.tokens.wait) and proposed == self.tokens.wait[0]
        return self.thinking_tokens >= self._next_probe or at_wait

    def _start_probe(self, proposed: int) -> int:
        """Hold the row's own token; the probe feeds [newline] + the forced answer text first."""
        every = self.budget.adaptive.every
        if self.thinking_tokens >= self._next_probe:
            self._next_probe = (self.thinking_tokens // every + 1) * every
        self._held, self.phase = proposed, PROBE
        self._probe = Probe(at=self.thinking_tokens)
        last = self.generated[-1] if self.generated else None
        if last is not None and last not in self.tokens.ends_with_newline:
            self._probe_queue.extend(self.tokens.newline)
        self._probe_queue.extend(self.tokens.answer)
        return self._probe_step(self._probe_queue[0], None)

    def _probe_step(self, proposed: int, prob: float | None) -> int | None:
        probe, rule = self._probe, self.budget.adaptive
        if self._probe_queue:
            token = self._probe_queue.popleft()
            probe.ids.append(token)
            probe.forced += 1
            return token
        if proposed in self.tokens.stop:
            return self._end_probe(fed=len(probe.ids))
        probe.ids.append(proposed)
        probe.probs.append(1.0 if prob is None else prob)
        if len(probe.answer_ids) < rule.tokens:
            return proposed
        return self._end_probe(fed=len(probe.ids) - 1)  # the last answer token is never fed

    def _end_probe(self, fed: int) -> int | None:
        """`fed`: the probe's tokens in the model's context, taken back out now."""
        probe, rule = self._probe, self.budget.adaptive
        if rule.read is not None:
            probe.answer, probe.hesitant = rule.read(probe.answer_ids)
        self.probes.append(probe)
        self.probe_tokens += len(probe.ids)
        self.hidden_rollback += fed
        held = self._held
        self._probe, self._held, self.phase = None, None, THINK
        allowed = self.waits >= self.budget.num_ignore and self.thinking_tokens >= self.budget.min_thinking_tokens
        if allowed and settled(rule, self.probes):
            self.adaptive_stop = True
            self._force_answer(capped=False)
            return self.step(held)
        return self._think(held)

    def probe_context(self) -> list[int]:
        """The running probe's tokens that are in the model's context now (for references)."""
        return list(self._probe.ids) if self._probe is not None else []

    @property
    def stopped_by(self) -> str:
        """What ended thinking: the model, the cap, or the adaptive rule."""
        return "adaptive" if self.adaptive_stop else "cap" if self.capped else "model"

    # -- whole spans, for engines that generate a round at a time (s1's multi-round) --------
    def append_thinking(self, ids: list[int]) -> None:
        """Sampled thinking tokens, already cut at the cap and before any end of thinking."""
        assert self.phase == THINK
        self.generated += ids
        self.forced += [False] * len(ids)
        self.thinking_tokens += len(ids)

    def append_wait(self) -> None:
        """An ignored end of thinking: force `Wait` (as much of it as the cap leaves room for)."""
        room = self.budget.thinking_cap - self.thinking_tokens
        wait = list(self.tokens.wait[: max(room, 0)])
        self.waits += 1
        self.generated += wait
        self.forced += [True] * len(wait)
        self.thinking_tokens += len(wait)

    def end_thinking(self, ended_by: int | None) -> None:
        """Thinking is over: `ended_by` is the token the model ended it with (None: the cap).
        The model's own delimiter is kept as sampled; otherwise [newline] + delimiter are forced.
        The forced tokens are appended at once."""
        if ended_by is not None and ended_by in self.tokens.end_think:
            self.think_end_index = len(self.generated)
            self.phase = ANSWER
            self._append(ended_by, forced=False)
            self.queue.extend(self.tokens.answer[len(self.tokens.end_think) :])
        else:
            self._force_answer(capped=ended_by is None)
        while self.queue:
            self._append(self.queue.popleft(), forced=True)

    def append_answer(self, ids: list[int], stopped: bool) -> None:
        """The answer's sampled tokens (cut before the end token); `stopped`: an end token came."""
        self.generated += ids
        self.forced += [False] * len(ids)
        self.answer_tokens = len(ids)
        self.finish("stop" if stopped else "length")

    def take_rollback(self) -> tuple[int, int]:
        """How many already-fed tokens the engine must drop from its cache now (then zero):
        (of the row's own output, of a finished probe). The probe's tokens were fed last."""
        n, hidden = self.rollback, self.hidden_rollback
        self.rollback = self.hidden_rollback = 0
        return n, hidden

    # -- helpers --------------------------------------------------------------------------
    def _enforce_cap(self) -> None:
        """The cap wins over everything, queued Waits included."""
        if self.phase == THINK and self.thinking_tokens >= self.budget.thinking_cap:
            self._force_answer(capped=True)

    def _force_answer(self, capped: bool) -> None:
        self.capped = self.capped or capped
        self.queue.clear()
        self.think_end_index = len(self.generated)
        self.phase = ANSWER
        last = self.generated[-1] if self.generated else None
        if last is not None and last not in self.tokens.ends_with_newline:
            self.queue.extend(self.tokens.newline)
        self.queue.extend(self.tokens.answer)

    def _append(self, token: int, forced: bool) -> None:
        self.generated.append(token)
        self.forced.append(forced)
        if forced and self.phase == THINK:
            self.thinking_tokens += 1  # forced Wait is part of the thinking text

    def _think_tail(self, n: int) -> list[int]:
        return self.generated[-n:] if n and len(self.generated) >= n else []

    def _rollback(self, n: int) -> None:
        if n:
            del self.generated[-n:]
            del self.forced[-n:]
            self.thinking_tokens -= n
            self.rollback += n

    def finish(self, reason: str) -> None:
        """End the row: `stop` (an end token), `length` (the answer limit), `context` (the
        model's context is full)."""
        self.phase = DONE
        self.queue.clear()
        self.finish_reason = reason
        return None

    @property
    def done(self) -> bool:
        return self.phase == DONE

    def thinking_ids(self) -> list[int]:
        end = self.think_end_index if self.think_end_index is not None else len(self.generated)
        return self.generated[:end]

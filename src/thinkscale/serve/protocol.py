"""The OpenAI-compatible request bodies, validated (pydantic), and the error shape.

Standard fields follow the OpenAI API; thinkscale's budget forcing adds `thinking_budget` (also
read as vLLM's `thinking_token_budget`; -1 or null = no cap), `num_ignore`, `min_thinking` and
`wait`. Fields this server does not implement and that would change the result (`logprobs`,
`tools`, `response_format`, penalties) are refused by name instead of silently ignored; other
unknown fields are ignored, as OpenAI clients send many.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

UNSUPPORTED = {
    "logprobs": "log-probabilities",
    "top_logprobs": "log-probabilities",
    "tools": "tool calls",
    "tool_choice": "tool calls",
    "functions": "function calls",
    "response_format": "structured output",
    "frequency_penalty": "penalties",
    "presence_penalty": "penalties",
    "logit_bias": "logit bias",
}


class ContentPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class GenerationFields(BaseModel):
    """What both endpoints take: sampling, length, stop, and the thinking budget."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    n: int = Field(1, ge=1, le=64)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=-1, description="0 or -1 = off")
    seed: int | None = None
    max_completion_tokens: int | None = Field(None, ge=1, description="bound on thinking + answer tokens")
    max_tokens: int | None = Field(None, ge=1, description="the older name of max_completion_tokens")
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    thinking_budget: int | None = Field(None, ge=-1, description="thinking cap in tokens; -1 or null = none")
    thinking_token_budget: int | None = Field(None, ge=-1, description="vLLM's name for thinking_budget")
    num_ignore: int = Field(0, ge=0, le=64, description="ends of thinking replaced by Wait")
    min_thinking: int = Field(0, ge=0, description="end of thinking is suppressed until this many tokens")
    wait: str | None = Field(None, min_length=1, description="text forced when an end of thinking is ignored")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, what in UNSUPPORTED.items():
                value = data.get(name)
                if value not in (None, False, 0, 0.0, [], {}):
                    raise ValueError(f"{name}: {what} are not supported by thinkscale serve")
        return data

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else v
        if stops is not None and (len(stops) > 8 or any(not s for s in stops)):
            raise ValueError("at most 8 non-empty stop strings")
        return stops

    def limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def cap(self) -> int | None:
        """The thinking cap asked for (None: no cap); thinking_budget wins over vLLM's name."""
        value = self.thinking_budget if self.thinking_budget is not None else self.thinking_token_budget
        return None if value is None or value < 0 else value

    def budget_asked(self) -> bool:
        """Does the request ask for any thinking control at all?"""
        return self.cap() is not None or self.num_ignore > 0 or self.min_thinking > 0 or self.wait is not None


class ChatRequest(GenerationFields):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(GenerationFields):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v):
        if isinstance(v, list):
            if len(v) != 1:
                raise ValueError("one prompt per request (send a list of one, or a string)")
            return v[0]
        return v


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:  # fmt: skip
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def validation_message(errors: list[dict]) -> tuple[str, str | None]:
    """pydantic's errors -> one line naming the field (and the field name for `param`)."""
    first = errors[0]
    loc = [str(x) for x in first.get("loc", ()) if x not in ("body",)]
    field = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return f"malformed JSON: {first.get('ctx', {}).get('error', first.get('msg'))}", None
    msg = first.get("msg", "invalid")
    msg = msg.removeprefix("Value error, ")
    if field and not msg.startswith(field):
        return f"{field}: {msg}", field
    return msg, field

"""thinkscale: from reasoning traces to a measured reasoning model.

    import thinkscale as ts
    recs = ts.generate(["What is 17*23?"], model=model, tokenizer=tok, budget=256, n=4,
                       temperature=0.7)          # graded records, in memory
    metrics = ts.evaluate(recs)
    for ev in ts.stream("Prove ...", model=model, tokenizer=tok, budget=512):
        print(ev.text, end="")

The verbs load lazily: `import thinkscale` imports no torch and changes no environment variable.
"""

from __future__ import annotations

__version__ = "0.1.0"


class ThinkscaleError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits non-zero."""


_VERBS = {
    "generate": "thinkscale.api",
    "stream": "thinkscale.api",
    "evaluate": "thinkscale.api",
    "report": "thinkscale.api",
    "curate": "thinkscale.api",
    "train_sft": "thinkscale.api",
    "load_model": "thinkscale.models",
    "GenerateConfig": "thinkscale.infer.generate",
    "StreamEvent": "thinkscale.infer.streaming",
}

__all__ = ["ThinkscaleError", "__version__", *_VERBS]


def __getattr__(name: str):
    if name in _VERBS:
        import importlib

        return getattr(importlib.import_module(_VERBS[name]), name)
    raise AttributeError(f"module 'thinkscale' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

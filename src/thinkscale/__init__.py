"""thinkscale: from reasoning traces to a measured reasoning model."""

import os

# Nothing may be fetched from a model or data hub at run time: every model is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"


class ThinkscaleError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits non-zero."""

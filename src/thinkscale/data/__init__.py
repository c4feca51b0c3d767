"""Data: reasoning traces in, validated; built-in trace corpora; curation stages (later)."""

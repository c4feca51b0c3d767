"""Metrics, statistics and reports over result records (from this tool or anywhere)."""

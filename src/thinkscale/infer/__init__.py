"""Inference: engines, budget forcing, records."""

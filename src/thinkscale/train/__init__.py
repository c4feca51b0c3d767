"""Training: completion-only SFT on think/answer traces (TRL underneath)."""

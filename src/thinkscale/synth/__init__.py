"""The synthetic-data loop (DoT-sync system 1, STaR, ReST-EM): generate, verify, self-correct, keep, retrain."""

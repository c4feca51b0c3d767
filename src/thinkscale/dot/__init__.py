"""Diffusion of Thoughts: a masked-diffusion reasoner (train, sample, eval)."""

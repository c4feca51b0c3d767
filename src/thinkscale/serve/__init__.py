"""Serving: an OpenAI-compatible HTTP server over the engine (`thinkscale serve`)."""

"""The OpenAI-compatible ``/v1`` endpoints and ``/metrics``, a plain ASGI app before FastAPI."""

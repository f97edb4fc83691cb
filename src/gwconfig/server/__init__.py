"""``gwconfig serve``: the gateway API (FastAPI + uvicorn)."""

"""``gwconfig serve``: the gateway's HTTP API (FastAPI + uvicorn, the ``server`` extra)."""

"""``GET /api/v1/config``: the runtime configuration document and its delivery."""

"""The REST API under ``/api/v1`` (docs/api.md): providers, their children, revisions."""

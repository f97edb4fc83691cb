"""The Anthropic Messages API on the gateway: ``POST /v1/messages`` and its ``count_tokens``."""

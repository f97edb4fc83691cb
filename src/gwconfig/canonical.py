"""The canonical configuration shape shared by compile, the state reader, diff and the runtime.

A *canonical configuration* is a plain JSON-ready dict (the body of ``gwconfig compile``'s output
without ``content_hash``)::

    {
      "format_version": 1,
      "providers": [            # sorted by provider_id
        {
          "provider_id": str, "provider_type": str, "display_name": str, "description": str|None,
          "enabled": bool, "tags": [str] (sorted, unique), "deletion_protection": bool,
          "connection": {"api_base": str|None, "api_version": str|None, "headers": {str: str}},
          "request_settings": {...every RequestSettings field, defaults filled, except the
                               LATER_SETTINGS, present only when not at their default...},
          "connection_parameters": [   # sorted by (name, environment)
            {"name": str, "environment": str, "sensitive": bool,
             "value": str|int|float|bool  (plain)  |  {"env"|"file"|"sealed": str} (secret ref)}
          ],
          "api_keys": [                # sorted by (name, environment)
            {"name": str, "environment": str, "value": {"env"|"file"|"sealed": str},
             "expires_at": "YYYY-MM-DDTHH:MM:SSZ" | None}
          ],
          "models": [                  # sorted by model_id
            {"model_id": str, "display_name": str, "model_type": str,
             "context_window": int|None, "max_tokens": int|None, "enabled": bool,
             "capabilities": [str] (sorted, unique), "parameters": {...},
             "pricing": {"currency", "input_per_1m", "output_per_1m", "cached_input_per_1m"}|None,
             "aliases": [str] (sorted, unique)}
          ]
        }
      ],
      "gateway": {"default_route": str|None,
                  "routes": [ {"name", "description", "strategy",
                               "targets": [{"provider_id", "model_id", "weight"}] (order kept),
                               "fallbacks": [str] (order kept)} ],  # sorted by name
                  "egress": {"allow": [str] (sorted, unique)}  # only when the Gateway sets one
                 },
      "consumers": [            # sorted by name; only when a Consumer manifest declares one
        {"name": str, "description": str|None, "models": [str] (order kept),
         "limits": {"rpm": int, "tpm": int} (only those set),
         "budget": {"usd": float, "period": "day"|"week"|"month"}|None,
         "tags": [str] (sorted, unique)}
      ]
    }

The state reader (database -> ActualState) produces the same shape, with secret values
replaced by what the database knows (see ``gwconfig.reconcile.state``). Canonical JSON is ``orjson``
with sorted keys; the content hash is ``sha256:`` + hex digest of it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

FORMAT_VERSION = 1

#: Request settings added after the first release: the canonical form has them only when they
#: differ from these defaults, so configurations compiled and applied before keep their hash
#: and a plan against such a database shows no change.
DEFAULT_DEADLINE_SECONDS = 120.0
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
LATER_SETTINGS: tuple[tuple[str, float | int], ...] = (
    ("deadline_seconds", DEFAULT_DEADLINE_SECONDS),
    ("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES),
)


def canonical_json(data: Any) -> bytes:
    """Serialise ``data`` deterministically (sorted keys, no whitespace, UTF-8)."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def pretty_json(data: Any) -> bytes:
    """Deterministic, indented JSON with a trailing newline (for files people read)."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def content_hash(data: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``data``."""
    return "sha256:" + hashlib.sha256(canonical_json(data)).hexdigest()


def format_timestamp(value: datetime | None) -> str | None:
    """Canonical UTC timestamp ``YYYY-MM-DDTHH:MM:SSZ`` (naive datetimes are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str | None) -> datetime | None:
    """Inverse of :func:`format_timestamp` (returns an aware UTC datetime)."""
    if value is None:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def empty_config() -> dict[str, Any]:
    """A canonical configuration with nothing in it."""
    return {
        "format_version": FORMAT_VERSION,
        "providers": [],
        "gateway": {"default_route": None, "routes": []},
    }

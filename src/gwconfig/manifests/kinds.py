"""Each manifest ``kind`` and its pydantic model."""

from __future__ import annotations

from gwconfig.manifests.consumer import ConsumerManifest
from gwconfig.manifests.model import GatewayManifest, ProviderManifest

Manifest = ProviderManifest | GatewayManifest | ConsumerManifest

KINDS: dict[str, type[ProviderManifest] | type[GatewayManifest] | type[ConsumerManifest]] = {
    "Provider": ProviderManifest,
    "Gateway": GatewayManifest,
    "Consumer": ConsumerManifest,
}

"""Provider implementations: built-ins are imported lazily by :class:`ProviderFactory`."""

from gwconfig.runtime.providers.base import BaseProvider, ProviderCall, StreamChunk

__all__ = ["BaseProvider", "ProviderCall", "StreamChunk"]

"""The runtime's configuration: what it routes with, and where it is loaded from.

- :mod:`.gateway`: :class:`~.gateway.GatewayConfig` and its parts (providers, routes, keys,
  request settings), immutable and indexed;
- :mod:`.table`: one provider's models (:class:`~.table.ModelConfig`, the lazy ``ModelTable``);
- :mod:`.build`: the canonical configuration -> ``GatewayConfig``;
- :mod:`.sources`: :class:`~.sources.ConfigLoader` (gateway database, compiled file, gateway
  API through :mod:`.remote`) and :mod:`.seed_update` (the seed's provider writes).

The public names are :mod:`gwconfig.runtime`'s.
"""

"""The seed-compatible API: ProviderRepository and ProviderService over the gateway tables."""

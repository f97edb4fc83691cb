"""The gwconfig runtime: load the compiled configuration and route LLM requests with it.

loader = ConfigLoader(db)            # Session, Engine, database URL or compiled JSON path
config = loader.load_config_as_object()
client = LLMGatewayClient(config, ProviderFactory(), db)
response = await client.generate(LLMRequest("Hello", LLMConfig(model_identifier="gpt-4o")))
"""

from gwconfig.runtime.client import LLMGatewayClient, check_config
from gwconfig.runtime.config.gateway import (
    ApiKey,
    GatewayConfig,
    ProviderConfig,
    RequestSettings,
    RouteConfig,
    Target,
)
from gwconfig.runtime.config.sources import ConfigLoader, runtime_environment
from gwconfig.runtime.config.table import ModelConfig
from gwconfig.runtime.errors import (
    AllTargetsFailedError,
    AmbiguousModelError,
    AuthenticationError,
    BadRequestError,
    ConfigLoadError,
    DeadlineExceededError,
    NoRouteError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    TargetFailure,
    UnsupportedParameterError,
)
from gwconfig.runtime.factory import ENTRY_POINT_GROUP, ProviderFactory
from gwconfig.runtime.messages import (
    Attempt,
    InterventionContext,
    LLMConfig,
    LLMRequest,
    LLMResponse,
    Usage,
)
from gwconfig.runtime.providers.base import BaseProvider, ProviderCall, StreamChunk
from gwconfig.runtime.streaming import LLMStream

__all__ = [
    "ENTRY_POINT_GROUP",
    "AllTargetsFailedError",
    "AmbiguousModelError",
    "ApiKey",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BaseProvider",
    "ConfigLoadError",
    "ConfigLoader",
    "DeadlineExceededError",
    "GatewayConfig",
    "InterventionContext",
    "LLMConfig",
    "LLMGatewayClient",
    "LLMRequest",
    "LLMResponse",
    "LLMStream",
    "ModelConfig",
    "NoRouteError",
    "ProviderCall",
    "ProviderConfig",
    "ProviderError",
    "ProviderFactory",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RequestSettings",
    "RouteConfig",
    "StreamChunk",
    "Target",
    "TargetFailure",
    "UnsupportedParameterError",
    "Usage",
    "check_config",
    "runtime_environment",
]

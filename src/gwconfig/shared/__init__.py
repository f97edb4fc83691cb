"""State shared by every replica of ``gwconfig serve``: request limits, token limits, budgets
and cooldowns, kept in Redis when ``GWCONFIG_REDIS_URL`` / ``serve --redis-url`` names one and
per process otherwise.

:mod:`~gwconfig.shared.limits` decides (API-neutral :class:`~gwconfig.shared.limits.Decision`),
over a backend: :mod:`~gwconfig.shared.local` (this process) or
:mod:`~gwconfig.shared.redis_backend` (Redis, its Lua scripts in
:mod:`~gwconfig.shared.scripts`; the only module that imports ``redis``, on first use).
"""

"""The router of the REST API: providers, their children, revisions and consumers, in that order
(the order of the OpenAPI document). Include ``router`` with the prefix ``/api/v1``.

Shapes are the migration guide's dicts (:mod:`gwconfig.seed.service`); secrets are never
returned (API keys and sensitive parameters are masked, fingerprints shortened).
"""

from __future__ import annotations

from fastapi import APIRouter

from gwconfig.server.rest import children, consumers, providers, revisions

router = APIRouter()
router.include_router(providers.router)
router.include_router(children.router)
router.include_router(revisions.router)
router.include_router(consumers.router)

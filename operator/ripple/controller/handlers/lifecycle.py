"""Operator start-up and shutdown: connections to NATS and the API server, Kopf settings."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes_asyncio import client, config

from ripple.controller.config import OperatorConfig
from ripple.kube.client import Kube
from ripple.store import EventStore

__all__ = ["connect", "disconnect"]


@kopf.on.startup()
async def connect(memo: Any, settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    cfg: OperatorConfig = memo.config
    settings.persistence.finalizer = "ripple.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="ripple.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="ripple.dev")
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 60
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    cfg.kube = Kube(client.ApiClient())
    cfg.store = await EventStore.connect(cfg.nats_url, name="ripple-operator")
    cfg.store.default_replicas = cfg.broker_replicas
    logger.info("connected to NATS at %s", cfg.nats_url)


@kopf.on.cleanup()
async def disconnect(memo: Any, **_: Any) -> None:
    cfg: OperatorConfig = memo.config
    if cfg.store is not None:
        await cfg.store.close()
    if cfg.kube is not None:
        await cfg.kube.api_client.close()

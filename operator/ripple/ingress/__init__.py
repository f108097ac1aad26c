"""The broker ingress: ``POST /<namespace>/<broker>`` stores CloudEvents in JetStream."""

from ripple.ingress.app import create_ingress_app

__all__ = ["create_ingress_app"]

"""The store tests reuse the dispatcher fixture."""

from tests.dispatch.conftest import dispatcher

__all__ = ["dispatcher"]

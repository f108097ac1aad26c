"""What a Function's code imports from Ripple: idempotency, and the exceptions that choose its answer.

    from ripple.functions import Reject, idempotent

    @idempotent
    async def handle(event):
        ...
"""

from ripple.runtime.errors import Reject, RetryLater
from ripple.runtime.idempotency import IdempotencyError, KvLedger, PostgresLedger, idempotent

__all__ = ["IdempotencyError", "KvLedger", "PostgresLedger", "Reject", "RetryLater", "idempotent"]

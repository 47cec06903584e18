"""The exceptions of the package.

Every exception derives from :class:`LullError`. The wire's error codes
(PROTOCOL.md: ``invalid_request``, ``not_found``, ``forbidden``,
``unavailable``, ``internal``) map onto :class:`ServiceError` subclasses.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "LullError",
    "ValidationError",
    "ServiceError",
    "InvalidRequest",
    "NotFound",
    "Forbidden",
    "Unavailable",
    "LeaseDenied",
    "LeaseTimeout",
    "LeaseWithdrawn",
    "LeaseRevoked",
    "DeliveryError",
]


class LullError(Exception):
    """Base class of every error raised by this package."""


class ValidationError(LullError, ValueError):
    """A value broke a rule of the wire contract; nothing was sent.

    ``field`` is the path of the field (``data_verification.records_failed``)
    and ``rule`` the rule it broke (``must be >= 0``).
    """

    def __init__(self, field: str, rule: str, value: object = None) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        text = f"{field} {rule}"
        if value is not None:
            text += f", got {value!r}"
        super().__init__(text)


class ServiceError(LullError):
    """The coordinator answered with an error reply (``{"error": {...}}``)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class InvalidRequest(ServiceError):
    """The coordinator rejected the request as invalid (``invalid_request``)."""


class NotFound(ServiceError):
    """The thing asked about does not exist (``not_found``)."""


class Forbidden(ServiceError):
    """The token does not prove the right to act (``forbidden``)."""


class Unavailable(LullError):
    """No coordinator answered in time, or NATS cannot be reached.

    Raised after the call's deadline when every attempt failed in a way that
    may be transient (``no responders``, a timeout, a lost connection, or an
    ``unavailable`` error reply).
    """


class LeaseDenied(LullError):
    """The coordinator said no to a lease request (a normal ``approved: false`` reply).

    ``reason_code`` is the machine-readable code (``capacity_exceeded``,
    ``not_quiet``, ...), ``reason`` the coordinator's sentence with the
    numbers, ``retry_after_sec`` when to ask again.
    """

    def __init__(
        self,
        reason_code: Optional[str],
        reason: Optional[str],
        retry_after_sec: Optional[float],
    ) -> None:
        self.reason_code = reason_code
        self.reason = reason
        self.retry_after_sec = retry_after_sec
        super().__init__(f"lease denied [{reason_code}]: {reason}")


class LeaseTimeout(LeaseDenied):
    """No grant came before the wait's deadline; carries the last denial."""


class LeaseWithdrawn(LullError):
    """A queued lease request was removed by an operator or the coordinator."""


class LeaseRevoked(LullError):
    """The lease ended while held: revoked, expired or lost.

    ``state`` is ``REVOKED``, ``EXPIRED``, ``RELEASED`` (by someone else) or
    ``LOST``; ``reason`` is the coordinator's reason, if any.
    """

    def __init__(self, lease_id: str, state: str, reason: Optional[str]) -> None:
        self.lease_id = lease_id
        self.state = state
        self.reason = reason
        super().__init__(f"lease {lease_id} {state.lower()}: {reason or 'no reason given'}")


class DeliveryError(LullError):
    """A report could be neither handed to a spool nor published.

    Only raised when no directory can be written and NATS cannot be
    reached: the report was not stored anywhere.
    """


def service_error(code: str, message: str) -> ServiceError:
    """The :class:`ServiceError` subclass of an error reply's ``code``."""
    kinds = {
        "invalid_request": InvalidRequest,
        "not_found": NotFound,
        "forbidden": Forbidden,
    }
    return kinds.get(code, ServiceError)(code, message)

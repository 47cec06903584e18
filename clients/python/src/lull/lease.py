"""Heavy-work leases as a context manager, for threads and for asyncio.

.. code-block:: python

    with lull.lease(cost_units=30, job_type="reindex") as lease:
        for i, chunk in enumerate(chunks):
            if lease.revoked:
                break
            work(chunk)
            lease.progress(100 * (i + 1) / len(chunks), f"chunk {i + 1}")

    async with lull.lease(cost_units=30, job_type="reindex") as lease:
        await work()                      # cancelled if the lease is revoked
        await lease.progress(100, "done")

On a revoke (or expiry, or loss) an ``async with`` body's task is cancelled
and the block raises :class:`~lull.errors.LeaseRevoked`; a ``with`` body
sees ``lease.revoked`` become true, and ``on_revoke`` is called (in a worker
thread) and ``signal`` sent to the process, when given. On exit the lease is
released with the outcome ``success`` (or ``failure`` / ``cancelled`` when
the body raised), unless it already ended.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal as _signal
import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Type, Union

from ._lease_core import Held, LeaseEnd, LeaseRequest, acquire
from .errors import LeaseRevoked, LullError

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger("lull")

__all__ = ["Lease", "AsyncLease", "LeaseContext", "LeaseEnd", "LeaseRequest"]

RevokeCallback = Callable[["Lease"], None]


class _Base:
    """What both handles show: ids, token, expiry, and how the lease ended."""

    def __init__(self, held: Held) -> None:
        self._held = held

    @property
    def lease_id(self) -> str:
        """The public lease id."""
        return self._held.lease_id

    @property
    def host_id(self) -> str:
        """The host the lease is on."""
        return self._held.host_id

    @property
    def token(self) -> str:
        """The current secret token (replaced after a queued grant or a key rotation)."""
        return self._held.token

    @property
    def expires_at(self) -> Optional[float]:
        """The expiry last announced by the coordinator, Unix seconds."""
        return self._held.expires_at

    @property
    def limits(self) -> Optional[Dict[str, Any]]:
        """The grant's ``limits`` (``heartbeat_ttl_sec``, ``heartbeat_interval_sec``)."""
        return self._held.limits

    @property
    def ended(self) -> Optional[LeaseEnd]:
        """How the lease ended while held (revoked, expired, lost), or None."""
        return self._held.end

    @property
    def revoked(self) -> bool:
        """True once the lease was revoked, expired or lost: stop the work."""
        return self._held.end is not None

    def check(self) -> None:
        """Raises :class:`LeaseRevoked` if the lease has ended."""
        end = self._held.end
        if end is not None:
            raise LeaseRevoked(self.lease_id, end.state, end.reason)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.lease_id} on {self.host_id} ended={self.ended}>"


class Lease(_Base):
    """A held lease, for synchronous code (see the module doc)."""

    def progress(self, pct: Optional[float], note: Optional[str] = None,
                 metrics: Optional[Dict[str, Any]] = None) -> bool:
        """Reports progress (``lease.report``); False if the lease has ended."""
        core = self._held.core
        return core.run(self._held.progress(pct, note, metrics), core.cfg.request_timeout + 1.0)

    def release(self, outcome: str = "success") -> bool:
        """Releases the lease now; False if it had already ended."""
        core = self._held.core
        return core.run(self._held.release(outcome), core.cfg.request_timeout + 2.0)


class AsyncLease(_Base):
    """A held lease, for asyncio code (see the module doc)."""

    async def progress(self, pct: Optional[float], note: Optional[str] = None,
                       metrics: Optional[Dict[str, Any]] = None) -> bool:
        """Reports progress (``lease.report``); False if the lease has ended."""
        return await self._held.core.arun(self._held.progress(pct, note, metrics))

    async def release(self, outcome: str = "success") -> bool:
        """Releases the lease now; False if it had already ended."""
        return await self._held.core.arun(self._held.release(outcome))


class LeaseContext:
    """Returned by :func:`lull.lease`: use it with ``with`` or ``async with``."""

    def __init__(
        self,
        client: "Client",
        request: LeaseRequest,
        *,
        wait: bool,
        wait_timeout: float,
        on_revoke: Optional[RevokeCallback] = None,
        signal: Optional[Union[int, _signal.Signals]] = None,
    ) -> None:
        request.to_dict()  # validation errors are raised at once
        self._client = client
        self._request = request
        self._wait = wait
        self._wait_timeout = wait_timeout
        self._on_revoke = on_revoke
        self._signal = signal
        self._held: Optional[Held] = None
        self._released = False
        self._task: Optional["asyncio.Task[Any]"] = None
        self._caller_loop: Optional[asyncio.AbstractEventLoop] = None
        self._exiting = False
        self._cancelled_by_us = False

    # ----- shared ----------------------------------------------------------

    def _bound(self) -> float:
        cfg = self._client.config
        return (self._wait_timeout if self._wait else 0.0) + cfg.request_timeout + 5.0

    def _on_end(self, handle: _Base) -> Callable[[LeaseEnd], None]:
        def on_end(end: LeaseEnd) -> None:  # runs on the background loop
            if self._on_revoke is not None and isinstance(handle, Lease):
                cb = self._on_revoke
                threading.Thread(target=cb, args=(handle,), name="lull-on-revoke", daemon=True).start()
            if self._signal is not None:
                os.kill(os.getpid(), int(self._signal))
            if self._caller_loop is not None:
                self._caller_loop.call_soon_threadsafe(self._cancel_body)

        return on_end

    def _cancel_body(self) -> None:  # runs on the caller's loop
        task = self._task
        if task is not None and not self._exiting and not task.done():
            self._cancelled_by_us = True
            task.cancel()

    @staticmethod
    def _outcome(exc_type: Optional[Type[BaseException]]) -> str:
        if exc_type is None:
            return "success"
        if issubclass(exc_type, (asyncio.CancelledError, KeyboardInterrupt)):
            return "cancelled"
        return "failure"

    # ----- threads -----------------------------------------------------------

    def __enter__(self) -> Lease:
        core = self._client._core
        held = core.run(acquire(core, self._request, self._wait, self._wait_timeout), self._bound())
        self._held = held
        handle = Lease(held)
        held.listeners.append(self._on_end(handle))
        if held.end is not None:
            self._on_end(handle)(held.end)
        return handle

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        held = self._held
        if held is None:
            return
        core = held.core
        try:
            if held.end is None and not held._stopped:
                core.run(held.release(self._outcome(exc_type)), core.cfg.request_timeout + 2.0)
            else:
                core.run(held.stop(), 2.0)
        except LullError as e:
            log.warning("lease %s: release failed (%s); it will expire", held.lease_id, e)

    # ----- asyncio -------------------------------------------------------------

    async def __aenter__(self) -> AsyncLease:
        core = self._client._core
        self._caller_loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        held = await asyncio.wait_for(
            core.arun(acquire(core, self._request, self._wait, self._wait_timeout)), self._bound()
        )
        self._held = held
        handle = AsyncLease(held)
        on_end = self._on_end(handle)
        held.listeners.append(on_end)
        if held.end is not None:
            on_end(held.end)
        return handle

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        self._exiting = True
        held = self._held
        if held is None:
            return
        if self._cancelled_by_us:
            task = self._task
            if task is not None and sys.version_info >= (3, 11):
                task.uncancel()
        try:
            if held.end is None and not held._stopped:
                await held.core.arun(held.release(self._outcome(exc_type)))
            else:
                await held.core.arun(held.stop())
        except LullError as e:
            log.warning("lease %s: release failed (%s); it will expire", held.lease_id, e)
        end = held.end
        if self._cancelled_by_us and end is not None and exc_type is not None and issubclass(
            exc_type, asyncio.CancelledError
        ):
            raise LeaseRevoked(held.lease_id, end.state, end.reason) from exc

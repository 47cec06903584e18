"""``lull.track(worker_name)``: a context manager that times a worker run and
submits its execution report when the block ends.

.. code-block:: python

    with lull.track("youtube_worker") as report:
        report.data_verification.records_fetched = fetch()

``started_at``, ``completed_at`` and ``duration_ms`` are filled in; the
outcome is ``SUCCESS`` unless the body set another one, and ``FAILURE`` with
the exception's message when the body raises (the exception propagates).
``async with`` works the same way without blocking the event loop.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING, Optional, Type

from .errors import LullError
from .reports.delivery import Delivery
from .reports.worker import ExecutionOutcome, ExecutionReport, create_report

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger("lull")

__all__ = ["Tracker"]


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    data = text.encode("utf-8")[:4096]
    return data.decode("utf-8", errors="ignore")


class Tracker:
    """Times a run and submits its report on exit (see the module doc).

    After the block, ``delivery`` says where the report went."""

    def __init__(self, client: "Client", worker_name: str, *, execution_id: Optional[str] = None,
                 host_id: Optional[str] = None, timeout: Optional[float] = None) -> None:
        self._client = client
        self.report: ExecutionReport = create_report(
            worker_name, execution_id=execution_id, host_id=host_id
        )
        self.delivery: Optional[Delivery] = None
        self._timeout = timeout
        self._t0 = 0.0

    def _start(self) -> ExecutionReport:
        self.report.started_at = time.time()
        self._t0 = time.monotonic()
        return self.report

    def _finish(self, exc: Optional[BaseException]) -> None:
        elapsed = max(0.0, time.monotonic() - self._t0)
        r = self.report
        start = r.started_at if isinstance(r.started_at, (int, float)) else time.time() - elapsed
        r.completed_at = float(start) + elapsed
        r.duration_ms = elapsed * 1000.0
        if exc is not None:
            r.outcome = ExecutionOutcome.FAILURE
            r.error_message = _message(exc)
        elif r.outcome is None:
            r.outcome = ExecutionOutcome.SUCCESS

    def __enter__(self) -> ExecutionReport:
        return self._start()

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self._finish(exc)
        try:
            self.delivery = self._client.submit(self.report, timeout=self._timeout)
        except LullError as e:
            if exc is None:
                raise
            log.error("report of %s not submitted: %s", self.report.execution_id, e)

    async def __aenter__(self) -> ExecutionReport:
        return self._start()

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        self._finish(exc)
        try:
            self.delivery = await self._client.aio.submit(self.report, timeout=self._timeout)
        except LullError as e:
            if exc is None:
                raise
            log.error("report of %s not submitted: %s", self.report.execution_id, e)

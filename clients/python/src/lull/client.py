"""The :class:`Client`: one NATS connection on a background thread, with a
synchronous API and, as ``client.aio``, the same API for asyncio.

Most programs use the module-level functions of :mod:`lull`, which share
one default client configured from the environment (:func:`lull.configure`
replaces it).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import signal as _signal
import sys
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Union

from . import queries as q
from ._core import Core
from ._lease_core import LeaseRequest
from .config import Config
from .errors import LullError
from .lease import LeaseContext, RevokeCallback
from .reports.delivery import Delivery, Outbox, PreparedReport
from .reports.region import BuildFatigue, BuildRecord, FatigueEvent, FatigueType
from .reports.worker import ExecutionOutcome, ExecutionReport, default_host_id
from .tracking import Tracker

__all__ = ["Client", "AsyncClient", "Report"]

#: Anything :meth:`Client.submit` takes.
Report = Union[ExecutionReport, BuildRecord, FatigueEvent]

_NON_TOKEN = re.compile(r"[^A-Za-z0-9_:@-]")


def _default_addon_id() -> str:
    given = os.environ.get("LULL_ADDON_ID")
    if given:
        return given
    stem = os.path.splitext(os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else ""))[0]
    return _NON_TOKEN.sub("_", stem)[:64] or "python"


def quick(worker_name: str, success: bool, duration_ms: float,
          records_processed: Optional[int], records_fetched: Optional[int],
          records_failed: Optional[int], outcome: Optional[Union[ExecutionOutcome, str]],
          error_message: Optional[str], custom_metrics: Optional[Dict[str, Any]],
          execution_id: Optional[str], host_id: Optional[str]) -> ExecutionReport:
    """The report :func:`lull.quick_report` sends: a run that ended now."""
    now = time.time()
    start = now - max(0.0, float(duration_ms)) / 1000.0 if isinstance(duration_ms, (int, float)) else now
    r = ExecutionReport(worker_name=worker_name, started_at=max(0.0, start), completed_at=now,
                        duration_ms=duration_ms, host_id=host_id, error_message=error_message,
                        custom_metrics=dict(custom_metrics or {}))
    if execution_id is not None:
        r.execution_id = execution_id
    r.outcome = outcome if outcome is not None else (
        ExecutionOutcome.SUCCESS if success else ExecutionOutcome.FAILURE
    )
    r.data_verification.records_processed = records_processed
    r.data_verification.records_fetched = records_fetched
    r.data_verification.records_failed = records_failed
    return r


class Client:
    """A Lull client. Thread-safe; one per process is enough.

    ``Client()`` reads the environment (:meth:`Config.from_env`);
    ``Client(config)`` takes an explicit :class:`Config`; keyword arguments
    override single fields of either (``Client(servers=[...], prefix="acme")``).
    """

    def __init__(self, config: Optional[Config] = None, **overrides: Any) -> None:
        if config is None:
            config = Config.from_env(**overrides)
        elif overrides:
            from dataclasses import replace

            config = replace(config, **overrides)
        self.config = config
        self._core = Core(config)
        self._outbox = Outbox(self._core)
        self.aio = AsyncClient(self)
        self._host_id = default_host_id()
        self._closed = False
        if self._outbox.pending():
            self._core.submit(self._kick())
        atexit.register(self._at_exit)

    async def _kick(self) -> None:
        self._outbox.kick()

    def _prepare(self, report: Report) -> PreparedReport:
        if isinstance(report, ExecutionReport):
            host = None if self.config.spool_dir is not None else self._host_id
            return report.prepare(host_id=host)
        if isinstance(report, (BuildRecord, FatigueEvent)):
            return report.prepare()
        raise TypeError(f"not a report: {type(report).__name__}")

    def _bound(self, timeout: Optional[float]) -> float:
        return self.config.submit_timeout if timeout is None else max(0.0, timeout)

    # ----- reports ---------------------------------------------------------------

    def submit(self, report: Report, *, timeout: Optional[float] = None) -> Delivery:
        """Validates and delivers a worker, build or fatigue report durably
        (see :mod:`lull.reports.delivery`), blocking at most ``timeout``
        seconds (default ``submit_timeout``). Raises
        :class:`~lull.errors.ValidationError` before anything is sent."""
        prepared = self._prepare(report)
        bound = self._bound(timeout)
        return self._core.run(self._outbox.deliver(prepared, bound), bound + 2.0)

    def submit_execution_report(self, report: ExecutionReport, *, timeout: Optional[float] = None) -> Delivery:
        """Seed 003's ``submit_execution_report``."""
        return self.submit(report, timeout=timeout)

    def quick_report(self, worker_name: str, success: bool, duration_ms: float,
                     records_processed: Optional[int] = None, records_fetched: Optional[int] = None,
                     *, records_failed: Optional[int] = None,
                     outcome: Optional[Union[ExecutionOutcome, str]] = None,
                     error_message: Optional[str] = None,
                     custom_metrics: Optional[Dict[str, Any]] = None,
                     execution_id: Optional[str] = None, host_id: Optional[str] = None,
                     timeout: Optional[float] = None) -> Delivery:
        """Seed 003's ``quick_report``: one call after a run that just ended."""
        r = quick(worker_name, success, duration_ms, records_processed, records_fetched,
                  records_failed, outcome, error_message, custom_metrics, execution_id, host_id)
        return self.submit(r, timeout=timeout)

    def track(self, worker_name: str, *, execution_id: Optional[str] = None,
              host_id: Optional[str] = None, timeout: Optional[float] = None) -> Tracker:
        """A context manager timing a run and submitting its report (:mod:`lull.tracking`)."""
        return Tracker(self, worker_name, execution_id=execution_id, host_id=host_id, timeout=timeout)

    def record_build_result(self, region: str, success: bool, build_id: Optional[str] = None,
                            *, fatigues: Optional[List[Union[BuildFatigue, Dict[str, Any]]]] = None,
                            timeout: Optional[float] = None, **fields: Any) -> Delivery:
        """Seed 000's ``record_build_result``: reports one build with its
        ``fatigues``. ``fields`` are :class:`BuildRecord` fields
        (``duration_minutes``, ``queue_wait_minutes``, ``error``, ...);
        ``error_message`` is accepted for ``error`` (seed 001)."""
        return self.submit(build_record(region, success, build_id, fatigues, fields), timeout=timeout)

    def record_fatigue_event(self, region: str, reason: str, reason_code: Optional[str] = None,
                             error_message: Optional[str] = None, *,
                             fatigue_time: Optional[float] = None,
                             duration_hours: Optional[float] = None,
                             fatigue_type: Union[FatigueType, str] = FatigueType.FATIGUED,
                             event_id: Optional[str] = None,
                             timeout: Optional[float] = None) -> Delivery:
        """Seed 000's ``record_fatigue_event``: a fatigue with no build."""
        ev = fatigue_event(region, reason, reason_code, error_message, fatigue_time,
                           duration_hours, fatigue_type, event_id)
        return self.submit(ev, timeout=timeout)

    def flush(self, timeout: float = 5.0) -> int:
        """Sends what waits in the outbox; returns how many reports are left."""
        return self._core.run(self._outbox.drain(timeout), timeout + 2.0)

    def pending_reports(self) -> int:
        """How many reports wait in this client's outbox."""
        return len(self._outbox.pending())

    # ----- leases ------------------------------------------------------------------

    def lease(self, cost_units: Optional[int] = None, job_type: str = "job",
              priority: str = "NORMAL", host_id: Optional[str] = None, wait: bool = True,
              *, addon_id: Optional[str] = None, cost_class: Optional[str] = None,
              expected_duration_sec: Optional[float] = None, cpu_heavy: bool = False,
              disk_write_heavy: bool = False, network_heavy: bool = False,
              wait_timeout: float = 300.0, on_revoke: Optional[RevokeCallback] = None,
              signal: Optional[Union[int, _signal.Signals]] = None) -> LeaseContext:
        """A heavy-work lease for ``with`` / ``async with`` (:mod:`lull.lease`).

        ``wait=True`` waits in the coordinator's queue up to ``wait_timeout``
        seconds (then :class:`~lull.errors.LeaseTimeout`); ``wait=False``
        asks once (a denial raises :class:`~lull.errors.LeaseDenied`).
        ``addon_id`` defaults to ``LULL_ADDON_ID`` or the program's name."""
        req = LeaseRequest(
            addon_id=addon_id or _default_addon_id(), job_type=job_type, cost_units=cost_units,
            cost_class=cost_class, host_id=host_id, priority=priority,
            expected_duration_sec=expected_duration_sec, cpu_heavy=cpu_heavy,
            disk_write_heavy=disk_write_heavy, network_heavy=network_heavy,
        )
        return LeaseContext(self, req, wait=wait, wait_timeout=wait_timeout,
                            on_revoke=on_revoke, signal=signal)

    def revoke(self, lease_id: str, reason: Optional[str] = None) -> bool:
        """Revokes a lease (an operator's call)."""
        return bool(self._call(q.revoke(self._core, lease_id, reason)))

    def scheduler_status(self) -> Dict[str, Any]:
        """``scheduler.status``."""
        return self._call(q.scheduler_status(self._core))  # type: ignore[no-any-return]

    # ----- queries -------------------------------------------------------------------

    def _call(self, coro: Any) -> Any:
        return self._core.run(coro, self.config.request_timeout + 2.0)

    def hosts(self) -> List[q.HostSummary]:
        """Every known host with its quiet state and score."""
        return self._call(q.hosts(self._core))  # type: ignore[no-any-return]

    def host(self, host_id: str) -> Dict[str, Any]:
        """One host: snapshot, quiet assessment, agent status."""
        return self._call(q.host(self._core, host_id))  # type: ignore[no-any-return]

    def quiet_forecast(self, host_id: str) -> Dict[str, Any]:
        """The host's hour-of-week quiet heatmap and next quiet window."""
        return self._call(q.quiet_forecast(self._core, host_id))  # type: ignore[no-any-return]

    def regions_select(self, candidates: List[str],
                       weights: Optional[q.RegionWeights] = None) -> q.RegionSelection:
        """Ranks candidate build regions."""
        return self._call(q.regions_select(self._core, candidates, weights))  # type: ignore[no-any-return]

    def regions_stats(self, regions: Optional[List[str]] = None,
                      recent_builds_limit: Optional[int] = None) -> Dict[str, Any]:
        """The campaign stats document."""
        return self._call(q.regions_stats(self._core, regions, recent_builds_limit))  # type: ignore[no-any-return]

    def workers_executions(self, worker_name: str, limit: int = 20) -> List[q.ScoredExecution]:
        """A worker's newest stored runs with their scores."""
        return self._call(q.workers_executions(self._core, worker_name, limit))  # type: ignore[no-any-return]

    def workers_stats(self, worker_name: str) -> q.WorkerStats:
        """A worker's aggregate statistics."""
        return self._call(q.workers_stats(self._core, worker_name))  # type: ignore[no-any-return]

    def workers_learning(self, worker_name: str) -> Dict[str, Any]:
        """A worker's learning insights."""
        return self._call(q.workers_learning(self._core, worker_name))  # type: ignore[no-any-return]

    def learning_system(self) -> Dict[str, Any]:
        """System-wide learning insights."""
        return self._call(q.learning_system(self._core))  # type: ignore[no-any-return]

    def data_quality_summary(self) -> Dict[str, Any]:
        """The data quality overview."""
        return self._call(q.data_quality_summary(self._core))  # type: ignore[no-any-return]

    # ----- lifecycle ---------------------------------------------------------------------

    def close(self, flush_timeout: float = 0.0) -> None:
        """Optionally sends the outbox (at most ``flush_timeout`` s), then
        closes the connection and the background thread. Reports still in
        the outbox are sent by the next client using it."""
        if self._closed:
            return
        self._closed = True
        if flush_timeout > 0 and self._outbox.pending():
            try:
                self.flush(flush_timeout)
            except LullError:
                pass
        self._core.close()

    def _at_exit(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.close(flush_timeout=min(self.config.submit_timeout, 3.0))

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_record(region: str, success: bool, build_id: Optional[str],
                 fatigues: Optional[List[Union[BuildFatigue, Dict[str, Any]]]],
                 fields: Mapping[str, Any]) -> BuildRecord:
    """A :class:`BuildRecord` from ``record_build_result``'s arguments."""
    extra = dict(fields)
    if "error_message" in extra:
        message = extra.pop("error_message")
        extra.setdefault("error", message)
    known = set(BuildRecord.__dataclass_fields__)
    unknown = sorted(set(extra) - known)
    if unknown:
        from .errors import ValidationError

        raise ValidationError(unknown[0], "is not a build record field")
    rec = BuildRecord(region=region, success=success, fatigues=list(fatigues or []), **extra)
    if build_id is not None:
        rec.build_id = build_id
    return rec


def fatigue_event(region: str, reason: str, reason_code: Optional[str],
                  error_message: Optional[str], fatigue_time: Optional[float],
                  duration_hours: Optional[float], fatigue_type: Union[FatigueType, str],
                  event_id: Optional[str]) -> FatigueEvent:
    """A :class:`FatigueEvent` from ``record_fatigue_event``'s arguments."""
    ev = FatigueEvent(region=region, fatigue_reason=reason, fatigue_reason_code=reason_code,
                      error_message=error_message, fatigue_duration_hours=duration_hours,
                      fatigue_type=fatigue_type)
    if fatigue_time is not None:
        ev.fatigue_time = fatigue_time
    if event_id is not None:
        ev.event_id = event_id
    return ev


class AsyncClient:
    """The asyncio face of a :class:`Client` (``client.aio``): the same
    calls as coroutines. They run on the client's background loop, so any
    event loop may await them."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._core = client._core

    async def submit(self, report: Report, *, timeout: Optional[float] = None) -> Delivery:
        """:meth:`Client.submit` as a coroutine (bounded the same way)."""
        prepared = self._client._prepare(report)
        bound = self._client._bound(timeout)
        return await asyncio.wait_for(
            self._core.arun(self._client._outbox.deliver(prepared, bound)), bound + 2.0
        )

    async def submit_execution_report(self, report: ExecutionReport, *,
                                      timeout: Optional[float] = None) -> Delivery:
        """Seed 003's ``submit_execution_report``."""
        return await self.submit(report, timeout=timeout)

    async def quick_report(self, worker_name: str, success: bool, duration_ms: float,
                           records_processed: Optional[int] = None,
                           records_fetched: Optional[int] = None, *,
                           records_failed: Optional[int] = None,
                           outcome: Optional[Union[ExecutionOutcome, str]] = None,
                           error_message: Optional[str] = None,
                           custom_metrics: Optional[Dict[str, Any]] = None,
                           execution_id: Optional[str] = None, host_id: Optional[str] = None,
                           timeout: Optional[float] = None) -> Delivery:
        """Seed 003's ``quick_report``."""
        r = quick(worker_name, success, duration_ms, records_processed, records_fetched,
                  records_failed, outcome, error_message, custom_metrics, execution_id, host_id)
        return await self.submit(r, timeout=timeout)

    async def record_build_result(self, region: str, success: bool, build_id: Optional[str] = None,
                                  *, fatigues: Optional[List[Union[BuildFatigue, Dict[str, Any]]]] = None,
                                  timeout: Optional[float] = None, **fields: Any) -> Delivery:
        """Seed 000's ``record_build_result``."""
        return await self.submit(build_record(region, success, build_id, fatigues, fields),
                                 timeout=timeout)

    async def record_fatigue_event(self, region: str, reason: str, reason_code: Optional[str] = None,
                                   error_message: Optional[str] = None, *,
                                   fatigue_time: Optional[float] = None,
                                   duration_hours: Optional[float] = None,
                                   fatigue_type: Union[FatigueType, str] = FatigueType.FATIGUED,
                                   event_id: Optional[str] = None,
                                   timeout: Optional[float] = None) -> Delivery:
        """Seed 000's ``record_fatigue_event``."""
        ev = fatigue_event(region, reason, reason_code, error_message, fatigue_time,
                           duration_hours, fatigue_type, event_id)
        return await self.submit(ev, timeout=timeout)

    async def revoke(self, lease_id: str, reason: Optional[str] = None) -> bool:
        """Revokes a lease (an operator's call)."""
        return await self._core.arun(q.revoke(self._core, lease_id, reason))

    async def scheduler_status(self) -> Dict[str, Any]:
        """``scheduler.status``."""
        return await self._core.arun(q.scheduler_status(self._core))

    async def hosts(self) -> List[q.HostSummary]:
        """Every known host with its quiet state and score."""
        return await self._core.arun(q.hosts(self._core))

    async def host(self, host_id: str) -> Dict[str, Any]:
        """One host: snapshot, quiet assessment, agent status."""
        return await self._core.arun(q.host(self._core, host_id))

    async def quiet_forecast(self, host_id: str) -> Dict[str, Any]:
        """The host's quiet forecast."""
        return await self._core.arun(q.quiet_forecast(self._core, host_id))

    async def regions_select(self, candidates: List[str],
                             weights: Optional[q.RegionWeights] = None) -> q.RegionSelection:
        """Ranks candidate build regions."""
        return await self._core.arun(q.regions_select(self._core, candidates, weights))

    async def regions_stats(self, regions: Optional[List[str]] = None,
                            recent_builds_limit: Optional[int] = None) -> Dict[str, Any]:
        """The campaign stats document."""
        return await self._core.arun(q.regions_stats(self._core, regions, recent_builds_limit))

    async def workers_executions(self, worker_name: str, limit: int = 20) -> List[q.ScoredExecution]:
        """A worker's newest stored runs with their scores."""
        return await self._core.arun(q.workers_executions(self._core, worker_name, limit))

    async def workers_stats(self, worker_name: str) -> q.WorkerStats:
        """A worker's aggregate statistics."""
        return await self._core.arun(q.workers_stats(self._core, worker_name))

    async def workers_learning(self, worker_name: str) -> Dict[str, Any]:
        """A worker's learning insights."""
        return await self._core.arun(q.workers_learning(self._core, worker_name))

    async def learning_system(self) -> Dict[str, Any]:
        """System-wide learning insights."""
        return await self._core.arun(q.learning_system(self._core))

    async def data_quality_summary(self) -> Dict[str, Any]:
        """The data quality overview."""
        return await self._core.arun(q.data_quality_summary(self._core))

    async def flush(self, timeout: float = 5.0) -> int:
        """Sends what waits in the outbox; returns how many reports are left."""
        return await self._core.arun(self._client._outbox.drain(timeout))

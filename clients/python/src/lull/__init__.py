"""Lull's Python client.

Worker reports (seed 003), build and fatigue reports (seeds 000 and 001),
heavy-work leases, and typed fleet queries, over NATS (nats-py).

.. code-block:: python

    import lull

    lull.quick_report(worker_name="youtube_worker", success=True, duration_ms=5000,
                      records_processed=150, records_fetched=150)

    with lull.track("youtube_worker") as report:
        report.data_verification.records_fetched = 200

    with lull.lease(cost_units=30, job_type="reindex") as lease:
        lease.progress(50, "halfway")

The functions here use a default :class:`Client` configured from the
``LULL_*`` environment (:func:`configure` replaces it); :mod:`lull.aio` has
the same functions for asyncio.
"""

from __future__ import annotations

import signal as _signal
from typing import Any, Dict, List, Optional, Union

from . import aio
from ._default import configure, get_client
from .client import AsyncClient, Client, Report
from .config import Config
from .errors import (
    DeliveryError,
    Forbidden,
    InvalidRequest,
    LeaseDenied,
    LeaseRevoked,
    LeaseTimeout,
    LeaseWithdrawn,
    LullError,
    NotFound,
    ServiceError,
    Unavailable,
    ValidationError,
)
from .lease import AsyncLease, Lease, LeaseContext, LeaseEnd, RevokeCallback
from .queries import HostSummary, RegionSelection, RegionWeights, ScoredExecution, WorkerStats
from .reports import (
    BuildFatigue,
    BuildRecord,
    DataVerification,
    Delivery,
    ExecutionOutcome,
    ExecutionReport,
    FatigueEvent,
    FatigueType,
    ResourceMetrics,
    WorkerExecutionReport,
    create_report,
)
from .tracking import Tracker

__version__ = "0.1.0"

__all__ = [
    "aio", "configure", "get_client", "Client", "AsyncClient", "Config", "Report",
    "LullError", "ValidationError", "ServiceError", "InvalidRequest", "NotFound", "Forbidden",
    "Unavailable", "LeaseDenied", "LeaseTimeout", "LeaseWithdrawn", "LeaseRevoked", "DeliveryError",
    "Lease", "AsyncLease", "LeaseContext", "LeaseEnd",
    "HostSummary", "RegionSelection", "RegionWeights", "ScoredExecution", "WorkerStats",
    "BuildFatigue", "BuildRecord", "DataVerification", "Delivery", "ExecutionOutcome",
    "ExecutionReport", "FatigueEvent", "FatigueType", "ResourceMetrics", "WorkerExecutionReport",
    "Tracker", "create_report", "quick_report", "submit_execution_report", "track",
    "record_build_result", "record_fatigue_event", "submit", "lease", "hosts", "host",
    "quiet_forecast", "regions_select", "regions_stats", "workers_executions", "workers_stats",
    "workers_learning", "learning_system", "data_quality_summary", "scheduler_status",
]


def quick_report(worker_name: str, success: bool, duration_ms: float,
                 records_processed: Optional[int] = None, records_fetched: Optional[int] = None,
                 **kwargs: Any) -> Delivery:
    """Seed 003's ``quick_report``: reports a run that just ended
    (see :meth:`Client.quick_report` for the keyword arguments)."""
    return get_client().quick_report(worker_name, success, duration_ms, records_processed,
                                      records_fetched, **kwargs)


def submit_execution_report(report: ExecutionReport, *, timeout: Optional[float] = None) -> Delivery:
    """Seed 003's ``submit_execution_report``: validates and delivers a report durably."""
    return get_client().submit(report, timeout=timeout)


def submit(report: Report, *, timeout: Optional[float] = None) -> Delivery:
    """Validates and delivers a worker, build or fatigue report durably."""
    return get_client().submit(report, timeout=timeout)


def track(worker_name: str, *, execution_id: Optional[str] = None, host_id: Optional[str] = None,
          timeout: Optional[float] = None) -> Tracker:
    """A context manager (``with`` or ``async with``) that times a run and
    submits its report; FAILURE with the exception's message if the body raises."""
    return get_client().track(worker_name, execution_id=execution_id, host_id=host_id,
                              timeout=timeout)


def record_build_result(region: str, success: bool, build_id: Optional[str] = None,
                        *, fatigues: Optional[List[Union[BuildFatigue, Dict[str, Any]]]] = None,
                        **fields: Any) -> Delivery:
    """Seed 000's ``record_build_result`` (see :meth:`Client.record_build_result`)."""
    return get_client().record_build_result(region, success, build_id, fatigues=fatigues, **fields)


def record_fatigue_event(region: str, reason: str, reason_code: Optional[str] = None,
                         error_message: Optional[str] = None, **kwargs: Any) -> Delivery:
    """Seed 000's ``record_fatigue_event``: a fatigue with no build."""
    return get_client().record_fatigue_event(region, reason, reason_code, error_message, **kwargs)


def lease(cost_units: Optional[int] = None, job_type: str = "job", priority: str = "NORMAL",
          host_id: Optional[str] = None, wait: bool = True, *,
          on_revoke: Optional[RevokeCallback] = None,
          signal: Optional[Union[int, _signal.Signals]] = None, **kwargs: Any) -> LeaseContext:
    """A heavy-work lease for ``with`` or ``async with`` (see :meth:`Client.lease`)."""
    return get_client().lease(cost_units, job_type, priority, host_id, wait,
                              on_revoke=on_revoke, signal=signal, **kwargs)


def hosts() -> List[HostSummary]:
    """Every known host with its quiet state and score."""
    return get_client().hosts()


def host(host_id: str) -> Dict[str, Any]:
    """One host: snapshot, quiet assessment, agent status."""
    return get_client().host(host_id)


def quiet_forecast(host_id: str) -> Dict[str, Any]:
    """A host's hour-of-week quiet heatmap and next quiet window."""
    return get_client().quiet_forecast(host_id)


def regions_select(candidates: List[str], weights: Optional[RegionWeights] = None) -> RegionSelection:
    """Ranks candidate build regions (eligible first; excluded with why)."""
    return get_client().regions_select(candidates, weights)


def regions_stats(regions: Optional[List[str]] = None,
                  recent_builds_limit: Optional[int] = None) -> Dict[str, Any]:
    """The campaign stats document (seed 000)."""
    return get_client().regions_stats(regions, recent_builds_limit)


def workers_executions(worker_name: str, limit: int = 20) -> List[ScoredExecution]:
    """A worker's newest stored runs with their scores."""
    return get_client().workers_executions(worker_name, limit)


def workers_stats(worker_name: str) -> WorkerStats:
    """A worker's aggregate statistics."""
    return get_client().workers_stats(worker_name)


def workers_learning(worker_name: str) -> Dict[str, Any]:
    """A worker's learning insights."""
    return get_client().workers_learning(worker_name)


def learning_system() -> Dict[str, Any]:
    """System-wide learning insights."""
    return get_client().learning_system()


def data_quality_summary() -> Dict[str, Any]:
    """The data quality overview."""
    return get_client().data_quality_summary()


def scheduler_status() -> Dict[str, Any]:
    """Active and recent leases, hosts, addons, queue."""
    return get_client().scheduler_status()

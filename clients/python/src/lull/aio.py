"""The module-level API of :mod:`lull` for asyncio: the same functions as
coroutines, on the default client. ``lull.lease`` and ``lull.track`` already
work with ``async with``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from ._default import get_client
from .client import Report
from .queries import HostSummary, RegionSelection, RegionWeights, ScoredExecution, WorkerStats
from .reports.delivery import Delivery
from .reports.region import BuildFatigue
from .reports.worker import ExecutionReport

__all__ = [
    "quick_report", "submit_execution_report", "submit", "record_build_result",
    "record_fatigue_event", "hosts", "host", "quiet_forecast", "regions_select", "regions_stats",
    "workers_executions", "workers_stats", "workers_learning", "learning_system",
    "data_quality_summary", "scheduler_status", "flush",
]


async def quick_report(worker_name: str, success: bool, duration_ms: float,
                       records_processed: Optional[int] = None,
                       records_fetched: Optional[int] = None, **kwargs: Any) -> Delivery:
    """Seed 003's ``quick_report``."""
    return await get_client().aio.quick_report(worker_name, success, duration_ms,
                                               records_processed, records_fetched, **kwargs)


async def submit_execution_report(report: ExecutionReport, *,
                                  timeout: Optional[float] = None) -> Delivery:
    """Seed 003's ``submit_execution_report``."""
    return await get_client().aio.submit(report, timeout=timeout)


async def submit(report: Report, *, timeout: Optional[float] = None) -> Delivery:
    """Validates and delivers a worker, build or fatigue report durably."""
    return await get_client().aio.submit(report, timeout=timeout)


async def record_build_result(region: str, success: bool, build_id: Optional[str] = None, *,
                              fatigues: Optional[List[Union[BuildFatigue, Dict[str, Any]]]] = None,
                              **fields: Any) -> Delivery:
    """Seed 000's ``record_build_result``."""
    return await get_client().aio.record_build_result(region, success, build_id,
                                                      fatigues=fatigues, **fields)


async def record_fatigue_event(region: str, reason: str, reason_code: Optional[str] = None,
                               error_message: Optional[str] = None, **kwargs: Any) -> Delivery:
    """Seed 000's ``record_fatigue_event``."""
    return await get_client().aio.record_fatigue_event(region, reason, reason_code,
                                                       error_message, **kwargs)


async def hosts() -> List[HostSummary]:
    """Every known host with its quiet state and score."""
    return await get_client().aio.hosts()


async def host(host_id: str) -> Dict[str, Any]:
    """One host: snapshot, quiet assessment, agent status."""
    return await get_client().aio.host(host_id)


async def quiet_forecast(host_id: str) -> Dict[str, Any]:
    """A host's quiet forecast."""
    return await get_client().aio.quiet_forecast(host_id)


async def regions_select(candidates: List[str],
                         weights: Optional[RegionWeights] = None) -> RegionSelection:
    """Ranks candidate build regions."""
    return await get_client().aio.regions_select(candidates, weights)


async def regions_stats(regions: Optional[List[str]] = None,
                        recent_builds_limit: Optional[int] = None) -> Dict[str, Any]:
    """The campaign stats document."""
    return await get_client().aio.regions_stats(regions, recent_builds_limit)


async def workers_executions(worker_name: str, limit: int = 20) -> List[ScoredExecution]:
    """A worker's newest stored runs with their scores."""
    return await get_client().aio.workers_executions(worker_name, limit)


async def workers_stats(worker_name: str) -> WorkerStats:
    """A worker's aggregate statistics."""
    return await get_client().aio.workers_stats(worker_name)


async def workers_learning(worker_name: str) -> Dict[str, Any]:
    """A worker's learning insights."""
    return await get_client().aio.workers_learning(worker_name)


async def learning_system() -> Dict[str, Any]:
    """System-wide learning insights."""
    return await get_client().aio.learning_system()


async def data_quality_summary() -> Dict[str, Any]:
    """The data quality overview."""
    return await get_client().aio.data_quality_summary()


async def scheduler_status() -> Dict[str, Any]:
    """Active and recent leases, hosts, addons, queue."""
    return await get_client().aio.scheduler_status()


async def flush(timeout: float = 5.0) -> int:
    """Sends what waits in the default client's outbox; returns what is left."""
    return await get_client().aio.flush(timeout)

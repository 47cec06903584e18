"""Thin typed queries over the coordinator's read endpoints (PROTOCOL.md §3):
hosts, the quiet forecast, regions select and stats, and the worker views.

The replies are JSON objects; the :class:`typing.TypedDict` types below name
the fields most callers use (the replies carry more; see the docs of each
endpoint). The functions here are coroutines run on the client's loop; the
:class:`lull.Client` methods wrap them.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List, Optional, TypedDict, cast

from . import _validate as v
from ._core import Core
from .errors import InvalidRequest, LullError, ValidationError

#: Items asked for per page of a paged list endpoint.
PAGE_SIZE = 1000

#: Most pages read before giving up (a coordinator that keeps answering
#: with a cursor would otherwise loop for ever).
MAX_PAGES = 100_000

Request = Callable[[str, Any], Awaitable[Any]]


async def read_pages(request: Request, endpoint: str, body: Dict[str, Any],
                     merge: Callable[[Dict[str, Any], Dict[str, Any]], None]) -> Dict[str, Any]:
    """Reads a paged endpoint whole: asks ``endpoint`` with ``body`` plus
    ``limit`` and ``cursor`` page after page until a reply has no
    ``next_cursor``, and folds each later page into the first with
    ``merge(first, page)``. A page refused as larger than one NATS message
    is asked again with half the ``limit``. The result has no
    ``next_cursor``."""
    first: Optional[Dict[str, Any]] = None
    cursor: Optional[str] = None
    limit = PAGE_SIZE
    for _ in range(MAX_PAGES):
        req = dict(body, limit=limit)
        if cursor is not None:
            req["cursor"] = cursor
        try:
            page = cast(Dict[str, Any], await request(endpoint, req))
        except InvalidRequest as e:
            if limit > 1 and _too_large(str(e)):
                limit //= 2
                continue
            raise
        nxt = page.pop("next_cursor", None)
        if first is None:
            first = page
        else:
            merge(first, page)
        if nxt is None:
            return first
        if nxt == cursor:
            raise LullError(f"{endpoint}: the coordinator repeated cursor {nxt!r}")
        cursor = nxt
    raise LullError(f"{endpoint}: more than {MAX_PAGES} pages")


def _too_large(message: str) -> bool:
    """Whether an error says the reply would not fit in one NATS message."""
    return "reply too large" in message or "message limit" in message


def _extend(*keys: str) -> Callable[[Dict[str, Any], Dict[str, Any]], None]:
    """A ``merge`` that appends the lists under ``keys``."""
    def merge(first: Dict[str, Any], page: Dict[str, Any]) -> None:
        for k in keys:
            first.setdefault(k, []).extend(page.get(k) or [])
    return merge

__all__ = [
    "HostSummary",
    "RegionWeights",
    "RankedRegion",
    "ExcludedRegion",
    "RegionSelection",
    "ScoredExecution",
    "WorkerStats",
]


class HostSummary(TypedDict, total=False):
    """One entry of ``hosts.list``."""

    host_id: str
    state: str
    quiet_score: float
    last_seen: float
    stale: bool
    blocked: bool


class RegionWeights(TypedDict, total=False):
    """Weights of ``regions.select`` (``price``, ``success``, ``speed``)."""

    price: float
    success: float
    speed: float


class RankedRegion(TypedDict, total=False):
    """An eligible region of ``regions.select``, best first."""

    rank: int
    region: str
    score: float
    scores: Dict[str, float]
    spot_price_per_hour: Optional[float]
    success_rate: float
    avg_duration_minutes: Optional[float]
    total_builds: int


class ExcludedRegion(TypedDict, total=False):
    """A region ``regions.select`` left out, and why."""

    region: str
    code: str
    reason: str
    until: Optional[float]


class RegionSelection(TypedDict, total=False):
    """The ``regions.select`` reply."""

    ranked: List[RankedRegion]
    excluded: List[ExcludedRegion]
    weights: RegionWeights
    evaluated_at: float


class ScoredExecution(TypedDict, total=False):
    """A stored run from ``workers.executions``: the report's fields, its
    scores, quality level, learning metrics and anomalies."""

    execution_id: str
    worker_name: str
    host_id: str
    started_at: float
    completed_at: float
    outcome: str
    duration_ms: float
    error_message: str
    data_verification: Dict[str, Any]
    resource_metrics: Dict[str, Any]
    custom_metrics: Dict[str, Any]
    reliability_score: float
    performance_score: Optional[float]
    data_quality_score: Optional[float]
    resource_efficiency_score: Optional[float]
    overall_score: float
    quality_level: str
    learning: Dict[str, Any]
    anomalies: List[Dict[str, Any]]


class WorkerStats(TypedDict, total=False):
    """The ``workers.stats`` reply (the main fields)."""

    worker_name: str
    total_executions: int
    successful_executions: int
    failed_executions: int
    outcomes: Dict[str, int]
    success_rate: float
    avg_duration_ms: Optional[float]
    avg_overall_score: Optional[float]
    last_overall_score: Optional[float]
    last_quality_level: Optional[str]
    last_outcome: Optional[str]
    score_trend: List[Dict[str, Any]]
    schedule: Dict[str, Any]
    recent_anomalies: List[Dict[str, Any]]


async def hosts(core: Core) -> List[HostSummary]:
    """``hosts.list``: every host, sorted by id (read page by page)."""
    r = await read_pages(core.request, "hosts.list", {}, _extend("hosts"))
    return cast(List[HostSummary], r.get("hosts", []))


async def host(core: Core, host_id: str) -> Dict[str, Any]:
    """``hosts.get``: snapshot, quiet assessment and agent status of a host."""
    v.subject_token("host_id", host_id)
    return cast(Dict[str, Any], await core.request("hosts.get", {"host_id": host_id}))


async def quiet_forecast(core: Core, host_id: str) -> Dict[str, Any]:
    """``quiet.forecast``: the hour-of-week heatmap and next quiet window."""
    v.subject_token("host_id", host_id)
    return cast(Dict[str, Any], await core.request("quiet.forecast", {"host_id": host_id}))


async def regions_select(core: Core, candidates: List[str],
                         weights: Optional[RegionWeights] = None) -> RegionSelection:
    """``regions.select``: rank ``candidates`` (eligible first, excluded with why)."""
    if not isinstance(candidates, list):
        raise ValidationError("candidates", "must be a list of region names", candidates)
    for i, c in enumerate(candidates):
        v.subject_token(f"candidates[{i}]", c)
    body: Dict[str, Any] = {"candidates": candidates}
    if weights is not None:
        for k, w in weights.items():
            v.non_negative(f"weights.{k}", w)
        body["weights"] = dict(weights)
    return cast(RegionSelection, await core.request("regions.select", body))


async def regions_stats(core: Core, regions: Optional[List[str]] = None,
                        recent_builds_limit: Optional[int] = None) -> Dict[str, Any]:
    """``regions.stats``: the campaign stats document of seed 000."""
    body: Dict[str, Any] = {}
    if regions is not None:
        for i, r in enumerate(regions):
            v.subject_token(f"regions[{i}]", r)
        body["regions"] = regions
    if recent_builds_limit is not None:
        body["recent_builds_limit"] = v.int_range("recent_builds_limit", recent_builds_limit, 0, 1000)

    def merge(first: Dict[str, Any], page: Dict[str, Any]) -> None:
        first.setdefault("regions", {}).update(page.get("regions") or {})

    # Every page: the regions by name; the campaign totals are on each.
    return await read_pages(core.request, "regions.stats", body, merge)


async def workers_executions(core: Core, worker_name: str, limit: int = 20) -> List[ScoredExecution]:
    """``workers.executions``: the newest ``limit`` runs of a worker with
    their scores, newest first (more than 500 are read page by page)."""
    v.subject_token("worker_name", worker_name)
    v.int_range("limit", limit, 1, 1_000_000)
    out: List[ScoredExecution] = []
    cursor: Optional[str] = None
    for _ in range(MAX_PAGES):
        body: Dict[str, Any] = {"worker_name": worker_name, "limit": min(limit - len(out), 500)}
        if cursor is not None:
            body["cursor"] = cursor
        r = await core.request("workers.executions", body)
        out.extend(r.get("executions", []))
        nxt = r.get("next_cursor")
        if nxt is None or len(out) >= limit:
            return out[:limit]
        if nxt == cursor:
            raise LullError(f"workers.executions: the coordinator repeated cursor {nxt!r}")
        cursor = nxt
    return out


async def workers_stats(core: Core, worker_name: str) -> WorkerStats:
    """``workers.stats``."""
    v.subject_token("worker_name", worker_name)
    return cast(WorkerStats, await core.request("workers.stats", {"worker_name": worker_name}))


async def workers_learning(core: Core, worker_name: str) -> Dict[str, Any]:
    """``workers.learning``: best hour and day, breakdowns, trends, suggestions."""
    v.subject_token("worker_name", worker_name)
    return cast(Dict[str, Any], await core.request("workers.learning", {"worker_name": worker_name}))


async def learning_system(core: Core) -> Dict[str, Any]:
    """``learning.system`` (every page: the per-worker lists joined, the
    fleet totals from the first)."""
    merge = _extend("schedules", "workers_needing_attention", "optimization_opportunities")
    return await read_pages(core.request, "learning.system", {}, merge)


async def data_quality_summary(core: Core) -> Dict[str, Any]:
    """``data_quality.summary`` (every page's ``workers`` joined, the fleet
    totals from the first)."""
    return await read_pages(core.request, "data_quality.summary", {}, _extend("workers"))


def _merge_status(first: Dict[str, Any], page: Dict[str, Any]) -> None:
    first.setdefault("hosts", []).extend(page.get("hosts") or [])
    active = first.setdefault("leases", {}).setdefault("active", [])
    seen = {a.get("lease_id") for a in active}
    # A lease granted between pages could show twice; keep it once.
    for a in (page.get("leases") or {}).get("active") or []:
        if a.get("lease_id") not in seen:
            active.append(a)


async def scheduler_status(core: Core) -> Dict[str, Any]:
    """``scheduler.status``: active and recent leases, hosts, addons, queue
    (every page's hosts and active leases, the rest from the first page)."""
    return await read_pages(core.request, "scheduler.status", {}, _merge_status)


async def revoke(core: Core, lease_id: str, reason: Optional[str] = None) -> bool:
    """``lease.revoke`` (operators): True if the lease was revoked."""
    v.subject_token("lease_id", lease_id)
    body: Dict[str, Any] = {"lease_id": lease_id}
    if reason is not None:
        body["reason"] = v.text("reason", reason, v.MAX_TEXT_LEN)
    r = await core.request("lease.revoke", body)
    return bool(isinstance(r, dict) and r.get("ok"))

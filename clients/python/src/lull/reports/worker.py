"""Worker execution reports (seed 003; docs/workers.md "The report").

The names follow the seed: :class:`ExecutionOutcome`, :func:`create_report`,
:func:`quick_report`, :func:`submit_execution_report`, and a report object
with ``data_verification``, ``resource_metrics``, ``custom_metrics``,
``outcome`` and ``completed_at``. Submitting is in :mod:`lull.client`; this
module is the data and its validation.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any, Dict, List, Optional, Union

from .. import _validate as v
from ..errors import ValidationError
from .delivery import PreparedReport, default_host_id, prepare

__all__ = [
    "ExecutionOutcome",
    "DataVerification",
    "ResourceMetrics",
    "ExecutionReport",
    "create_report",
    "Timestamp",
    "default_host_id",
]

#: A point in time: Unix seconds, or a ``datetime``.
Timestamp = Union[float, int, datetime]

MAX_DURATION_MS = 30 * 86400 * 1000.0
MAX_FIELD_LIST = 256
MAX_VALIDATION_ERRORS = 100
MAX_CUSTOM_METRICS = 128


class ExecutionOutcome(str, Enum):
    """How a run ended (the wire names are the values)."""

    SUCCESS = "SUCCESS"
    PARTIAL = "PARTIAL"
    FAILURE = "FAILURE"
    TIMEOUT = "TIMEOUT"
    SKIPPED = "SKIPPED"

    def __str__(self) -> str:
        return self.value


@dataclass
class DataVerification:
    """Seed 003 "Data Verification Metrics". Every field is optional; what is
    left ``None`` (or empty) is not sent and not scored."""

    records_fetched: Optional[int] = None
    records_processed: Optional[int] = None
    records_stored: Optional[int] = None
    records_failed: Optional[int] = None
    records_skipped: Optional[int] = None
    newest_record_age_seconds: Optional[float] = None
    oldest_record_age_seconds: Optional[float] = None
    avg_record_age_seconds: Optional[float] = None
    expected_fields_present: Optional[bool] = None
    missing_fields: List[str] = field(default_factory=list)
    null_field_counts: Dict[str, int] = field(default_factory=dict)
    validation_checks_passed: Optional[int] = None
    validation_checks_failed: Optional[int] = None
    validation_errors: List[str] = field(default_factory=list)
    api_calls_made: Optional[int] = None
    api_calls_succeeded: Optional[int] = None
    api_calls_failed: Optional[int] = None
    api_rate_limited: Optional[bool] = None
    api_quota_remaining: Optional[int] = None
    cache_hits: Optional[int] = None
    cache_misses: Optional[int] = None
    cache_writes: Optional[int] = None
    cache_ttl_seconds: Optional[float] = None

    _COUNTS = (
        "records_fetched", "records_processed", "records_stored", "records_failed",
        "records_skipped", "validation_checks_passed", "validation_checks_failed",
        "api_calls_made", "api_calls_succeeded", "api_calls_failed",
        "api_quota_remaining", "cache_hits", "cache_misses", "cache_writes",
    )
    _SECONDS = (
        "newest_record_age_seconds", "oldest_record_age_seconds",
        "avg_record_age_seconds", "cache_ttl_seconds",
    )

    def validate(self) -> None:
        """Raises :class:`ValidationError` on the first broken rule."""
        p = "data_verification."
        for name in self._COUNTS:
            v.count_opt(p + name, getattr(self, name))
        for name in self._SECONDS:
            v.non_negative_opt(p + name, getattr(self, name))
        v.boolean_opt(p + "expected_fields_present", self.expected_fields_present)
        v.boolean_opt(p + "api_rate_limited", self.api_rate_limited)
        v.max_items(p + "missing_fields", self.missing_fields, MAX_FIELD_LIST)
        for i, f in enumerate(self.missing_fields):
            v.text(f"{p}missing_fields[{i}]", f, v.MAX_ID_LEN)
        v.max_items(p + "null_field_counts", self.null_field_counts, MAX_FIELD_LIST)
        for k, n in self.null_field_counts.items():
            v.text(p + "null_field_counts key", k, v.MAX_ID_LEN)
            v.count_opt(f"{p}null_field_counts.{k}", n)
            if n is None:
                raise ValidationError(f"{p}null_field_counts.{k}", "must be an integer", n)
        v.max_items(p + "validation_errors", self.validation_errors, MAX_VALIDATION_ERRORS)
        for i, e in enumerate(self.validation_errors):
            v.text(f"{p}validation_errors[{i}]", e, v.MAX_TEXT_LEN)

    def to_dict(self) -> Dict[str, Any]:
        """The wire object: set fields only."""
        out: Dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == [] or value == {}:
                continue
            out[f.name] = list(value) if isinstance(value, list) else (
                dict(value) if isinstance(value, dict) else value
            )
        return out


@dataclass
class ResourceMetrics:
    """Seed 003 "Resource Metrics". Every field is optional."""

    memory_peak_mb: Optional[float] = None
    cpu_percent_avg: Optional[float] = None
    network_bytes_received: Optional[int] = None
    database_query_count: Optional[int] = None
    redis_operations: Optional[int] = None

    def validate(self) -> None:
        """Raises :class:`ValidationError` on the first broken rule."""
        p = "resource_metrics."
        v.non_negative_opt(p + "memory_peak_mb", self.memory_peak_mb)
        v.non_negative_opt(p + "cpu_percent_avg", self.cpu_percent_avg)
        v.count_opt(p + "network_bytes_received", self.network_bytes_received)
        v.count_opt(p + "database_query_count", self.database_query_count)
        v.count_opt(p + "redis_operations", self.redis_operations)

    def to_dict(self) -> Dict[str, Any]:
        """The wire object: set fields only."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def to_unix(name: str, t: Optional[Timestamp]) -> Optional[float]:
    """Unix seconds of ``t`` (a number or a ``datetime``)."""
    if t is None:
        return None
    if isinstance(t, datetime):
        return t.timestamp()
    return v.number(name, t)


@dataclass
class ExecutionReport:
    """One worker run (seed 003). Fill it in, then submit it with
    :func:`lull.submit_execution_report`.

    ``completed_at`` defaults to the submission time and ``duration_ms`` to
    ``completed_at - started_at``; ``outcome`` must be set.
    """

    worker_name: str
    execution_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: Timestamp = field(default_factory=time.time)
    completed_at: Optional[Timestamp] = None
    outcome: Optional[Union[ExecutionOutcome, str]] = None
    duration_ms: Optional[float] = None
    host_id: Optional[str] = None
    error_message: Optional[str] = None
    data_verification: DataVerification = field(default_factory=DataVerification)
    resource_metrics: ResourceMetrics = field(default_factory=ResourceMetrics)
    upstream_data_age_seconds: Optional[float] = None
    downstream_consumers_waiting: Optional[int] = None
    custom_metrics: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self, now: Optional[float] = None) -> Dict[str, Any]:
        """The validated wire object; missing ``completed_at`` and
        ``duration_ms`` are filled from ``now`` (default: the current time).
        Raises :class:`ValidationError`."""
        v.ident("execution_id", self.execution_id)
        v.subject_token("worker_name", self.worker_name)
        if self.host_id is not None:
            v.subject_token("host_id", self.host_id)
        started = to_unix("started_at", self.started_at)
        assert started is not None
        v.non_negative("started_at", started)
        completed = to_unix("completed_at", self.completed_at)
        if completed is None:
            completed = time.time() if now is None else now
            completed = max(completed, started)
        v.non_negative("completed_at", completed)
        if completed < started:
            raise ValidationError("completed_at", f"must be >= started_at ({started})", completed)
        if self.outcome is None:
            raise ValidationError("outcome", "is required (SUCCESS, PARTIAL, FAILURE, TIMEOUT or SKIPPED)")
        try:
            outcome = ExecutionOutcome(str(self.outcome).upper())
        except ValueError:
            raise ValidationError(
                "outcome", "must be SUCCESS, PARTIAL, FAILURE, TIMEOUT or SKIPPED", self.outcome
            ) from None
        duration = self.duration_ms
        if duration is None:
            duration = (completed - started) * 1000.0
        v.in_range("duration_ms", duration, 0.0, MAX_DURATION_MS)
        v.text_opt("error_message", self.error_message, v.MAX_TEXT_LEN)
        self.data_verification.validate()
        self.resource_metrics.validate()
        v.non_negative_opt("upstream_data_age_seconds", self.upstream_data_age_seconds)
        v.count_opt("downstream_consumers_waiting", self.downstream_consumers_waiting)
        if not isinstance(self.custom_metrics, dict):
            raise ValidationError("custom_metrics", "must be an object (dict)", self.custom_metrics)
        v.max_items("custom_metrics", self.custom_metrics, MAX_CUSTOM_METRICS)
        for key in self.custom_metrics:
            v.text("custom_metrics key", key, v.MAX_ID_LEN)
        body: Dict[str, Any] = {
            "execution_id": self.execution_id,
            "worker_name": self.worker_name,
            "started_at": started,
            "completed_at": completed,
            "outcome": outcome.value,
            "duration_ms": float(duration),
            "data_verification": self.data_verification.to_dict(),
            "resource_metrics": self.resource_metrics.to_dict(),
            "custom_metrics": dict(self.custom_metrics),
        }
        optional = {
            "host_id": self.host_id,
            "error_message": self.error_message,
            "upstream_data_age_seconds": self.upstream_data_age_seconds,
            "downstream_consumers_waiting": self.downstream_consumers_waiting,
        }
        body.update({k: val for k, val in optional.items() if val is not None})
        return body

    def prepare(self, host_id: Optional[str] = None) -> PreparedReport:
        """Validates and serialises (at most 256 KiB). ``host_id`` fills a
        missing ``host_id``. Raises :class:`ValidationError`."""
        body = self.to_dict()
        if "host_id" not in body and host_id:
            body["host_id"] = host_id
        return prepare("worker", self.execution_id, self.worker_name, body)


# The report type under the name used by the Rust SDK and the docs.
WorkerExecutionReport = ExecutionReport


def create_report(
    worker_name: str,
    *,
    execution_id: Optional[str] = None,
    host_id: Optional[str] = None,
) -> ExecutionReport:
    """A report for a run starting now (seed 003 "Detailed Usage").

    The worker name is checked at once (a subject token)."""
    v.subject_token("worker_name", worker_name)
    r = ExecutionReport(worker_name=worker_name, host_id=host_id)
    if execution_id is not None:
        v.ident("execution_id", execution_id)
        r.execution_id = execution_id
    return r

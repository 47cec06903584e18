"""Build records and fatigue events (seeds 000 and 001; docs/regions.md
"Reports").

A build record is one entry of seed 000's ``recent_builds`` plus ``region``
(id ``build_id``); a fatigue event is a fatigue with no build (seed 000
scenario 2, id ``event_id``). A fatigue that happened inside a build travels
in that build's ``fatigues`` and must not be reported again as an event.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Mapping, Optional, Union

from .. import _validate as v
from ..errors import ValidationError
from .delivery import PreparedReport, prepare

__all__ = ["FatigueType", "BuildFatigue", "BuildRecord", "FatigueEvent"]

MAX_BUILD_SECONDS = 30 * 86400.0
MAX_FATIGUE_HOURS = 8760.0
MAX_USD = 1_000_000.0
MAX_FATIGUES_PER_BUILD = 64


class FatigueType(str, Enum):
    """Severity of a fatigue: FATIGUED (4 h rest) or EXHAUSTED (24 h)."""

    FATIGUED = "FATIGUED"
    EXHAUSTED = "EXHAUSTED"

    def __str__(self) -> str:
        return self.value


def _fatigue_type(name: str, t: Union[FatigueType, str]) -> FatigueType:
    try:
        return FatigueType(str(t).upper())
    except ValueError:
        raise ValidationError(name, "must be FATIGUED or EXHAUSTED", t) from None


def _validate_fatigue(path: str, reason: Any, code: Any, when: Any, hours: Any) -> None:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError(f"{path}fatigue_reason", "is required (a non-empty string)", reason)
    v.text(f"{path}fatigue_reason", reason, v.MAX_TEXT_LEN)
    v.text_opt(f"{path}fatigue_reason_code", code, v.MAX_ID_LEN)
    v.non_negative(f"{path}fatigue_time", when)
    if hours is not None:
        h = v.in_range(f"{path}fatigue_duration_hours", hours, 0.0, MAX_FATIGUE_HOURS)
        if h <= 0:
            raise ValidationError(f"{path}fatigue_duration_hours", "must be > 0", hours)


@dataclass
class BuildFatigue:
    """One fatigue inside a build's ``fatigues`` (seed 000)."""

    fatigue_reason: str
    fatigue_reason_code: Optional[str] = None
    fatigue_time: float = field(default_factory=time.time)
    fatigue_duration_hours: Optional[float] = None
    fatigue_type: Union[FatigueType, str] = FatigueType.FATIGUED

    @classmethod
    def from_value(cls, value: Union["BuildFatigue", Mapping[str, Any]], path: str) -> "BuildFatigue":
        """A fatigue from itself or from a seed-style dict."""
        if isinstance(value, BuildFatigue):
            return value
        if not isinstance(value, Mapping):
            raise ValidationError(path.rstrip("."), "must be a BuildFatigue or a dict", value)
        if "fatigue_reason" not in value:
            raise ValidationError(f"{path}fatigue_reason", "is required")
        return cls(
            fatigue_reason=value["fatigue_reason"],
            fatigue_reason_code=value.get("fatigue_reason_code"),
            fatigue_time=value.get("fatigue_time", time.time()),
            fatigue_duration_hours=value.get("fatigue_duration_hours"),
            fatigue_type=value.get("fatigue_type") or FatigueType.FATIGUED,
        )

    def to_dict(self, path: str = "") -> Dict[str, Any]:
        """The validated wire object."""
        _validate_fatigue(
            path, self.fatigue_reason, self.fatigue_reason_code,
            self.fatigue_time, self.fatigue_duration_hours,
        )
        return {
            "fatigue_reason": self.fatigue_reason,
            "fatigue_reason_code": self.fatigue_reason_code,
            "fatigue_time": float(self.fatigue_time),
            "fatigue_duration_hours": self.fatigue_duration_hours,
            "fatigue_type": _fatigue_type(f"{path}fatigue_type", self.fatigue_type).value,
        }


@dataclass
class BuildRecord:
    """One cloud build (seed 000 ``recent_builds`` entry plus ``region``).

    Either ``duration_minutes`` or ``duration_seconds`` is required."""

    region: str
    success: bool
    build_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: float = field(default_factory=time.time)
    build_type: Optional[str] = None
    machine_type: Optional[str] = None
    status: Optional[str] = None
    duration_seconds: Optional[float] = None
    duration_minutes: Optional[float] = None
    queue_wait_seconds: Optional[float] = None
    queue_wait_minutes: Optional[float] = None
    working_seconds: Optional[float] = None
    total_steps: Optional[int] = None
    failed_step: Optional[int] = None
    spot_price_per_hour: Optional[float] = None
    cost_usd: Optional[float] = None
    error: Optional[str] = None
    timeout_reason: Optional[str] = None
    fatigues: List[Union[BuildFatigue, Dict[str, Any]]] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        """The validated wire object. Raises :class:`ValidationError`."""
        v.ident("build_id", self.build_id)
        v.subject_token("region", self.region)
        if not isinstance(self.success, bool):
            raise ValidationError("success", "must be true or false", self.success)
        v.non_negative("timestamp", self.timestamp)
        for name in ("build_type", "machine_type", "status", "timeout_reason"):
            v.text_opt(name, getattr(self, name), v.MAX_ID_LEN)
        for name in ("duration_seconds", "queue_wait_seconds", "working_seconds"):
            v.in_range_opt(name, getattr(self, name), 0.0, MAX_BUILD_SECONDS)
        for name in ("duration_minutes", "queue_wait_minutes"):
            v.in_range_opt(name, getattr(self, name), 0.0, MAX_BUILD_SECONDS / 60)
        if self.duration_minutes is None and self.duration_seconds is None:
            raise ValidationError("duration_minutes or duration_seconds", "is required")
        v.count_opt("total_steps", self.total_steps)
        v.count_opt("failed_step", self.failed_step)
        if (
            self.failed_step is not None
            and self.total_steps is not None
            and self.failed_step > self.total_steps
        ):
            raise ValidationError(
                "failed_step", f"must not exceed total_steps ({self.failed_step} > {self.total_steps})"
            )
        v.in_range_opt("spot_price_per_hour", self.spot_price_per_hour, 0.0, MAX_USD)
        v.in_range_opt("cost_usd", self.cost_usd, 0.0, MAX_USD)
        v.text_opt("error", self.error, v.MAX_TEXT_LEN)
        v.max_items("fatigues", self.fatigues, MAX_FATIGUES_PER_BUILD)
        fatigues = [
            BuildFatigue.from_value(f, f"fatigues[{i}].").to_dict(f"fatigues[{i}].")
            for i, f in enumerate(self.fatigues)
        ]
        return {
            "timestamp": float(self.timestamp),
            "build_id": self.build_id,
            "region": self.region,
            "build_type": self.build_type,
            "machine_type": self.machine_type,
            "success": self.success,
            "status": self.status,
            "duration_seconds": self.duration_seconds,
            "duration_minutes": self.duration_minutes,
            "queue_wait_seconds": self.queue_wait_seconds,
            "queue_wait_minutes": self.queue_wait_minutes,
            "working_seconds": self.working_seconds,
            "total_steps": self.total_steps,
            "failed_step": self.failed_step,
            "spot_price_per_hour": self.spot_price_per_hour,
            "cost_usd": self.cost_usd,
            "error": self.error,
            "timeout_reason": self.timeout_reason,
            "fatigues": fatigues,
        }

    def prepare(self) -> PreparedReport:
        """Validated and serialised, routed on ``report.build.<region>``."""
        return prepare("build", self.build_id, self.region, self.to_dict())


@dataclass
class FatigueEvent:
    """A fatigue with no build (seed 000 scenario 2), e.g. a pool that was
    never created."""

    region: str
    fatigue_reason: str
    fatigue_reason_code: Optional[str] = None
    error_message: Optional[str] = None
    fatigue_time: float = field(default_factory=time.time)
    fatigue_duration_hours: Optional[float] = None
    fatigue_type: Union[FatigueType, str] = FatigueType.FATIGUED
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self) -> Dict[str, Any]:
        """The validated wire object. Raises :class:`ValidationError`."""
        v.ident("event_id", self.event_id)
        v.subject_token("region", self.region)
        _validate_fatigue(
            "", self.fatigue_reason, self.fatigue_reason_code,
            self.fatigue_time, self.fatigue_duration_hours,
        )
        v.text_opt("error_message", self.error_message, v.MAX_TEXT_LEN)
        return {
            "event_id": self.event_id,
            "region": self.region,
            "fatigue_reason": self.fatigue_reason,
            "fatigue_reason_code": self.fatigue_reason_code,
            "fatigue_time": float(self.fatigue_time),
            "fatigue_duration_hours": self.fatigue_duration_hours,
            "fatigue_type": _fatigue_type("fatigue_type", self.fatigue_type).value,
            "error_message": self.error_message,
        }

    def prepare(self) -> PreparedReport:
        """Validated and serialised, routed on ``report.fatigue.<region>``."""
        return prepare("fatigue", self.event_id, self.region, self.to_dict())

"""Durable reports: worker executions (seed 003), builds and fatigue events
(seeds 000, 001), and their delivery."""

from .delivery import Delivery
from .region import BuildFatigue, BuildRecord, FatigueEvent, FatigueType
from .worker import (
    DataVerification,
    ExecutionOutcome,
    ExecutionReport,
    ResourceMetrics,
    WorkerExecutionReport,
    create_report,
)

__all__ = [
    "Delivery",
    "BuildFatigue",
    "BuildRecord",
    "FatigueEvent",
    "FatigueType",
    "DataVerification",
    "ExecutionOutcome",
    "ExecutionReport",
    "ResourceMetrics",
    "WorkerExecutionReport",
    "create_report",
]

"""Tests without servers: validation, the report shapes, the spool hand-off,
the tracker, and the submission bound when NATS is unreachable."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import lull
from lull import ExecutionOutcome, ValidationError


def offline_client(tmp_path: Path, **kw: object) -> lull.Client:
    from conftest import free_port

    cfg = lull.Config(servers=[f"nats://127.0.0.1:{free_port()}"], spool_dir=None,
                      outbox_dir=tmp_path / "outbox", submit_timeout=1.0, request_timeout=1.0,
                      connect_timeout=0.5)
    return lull.Client(cfg, **kw)  # type: ignore[arg-type]


def test_validation_names_field_and_rule() -> None:
    r = lull.create_report("youtube_worker")
    r.outcome = ExecutionOutcome.SUCCESS
    r.data_verification.records_failed = -1
    with pytest.raises(ValidationError) as e:
        r.to_dict()
    assert e.value.field == "data_verification.records_failed"
    assert e.value.rule == "must be >= 0"
    with pytest.raises(ValidationError) as e:
        lull.create_report("bad.name")
    assert e.value.field == "worker_name"
    r = lull.create_report("w")
    with pytest.raises(ValidationError) as e:
        r.to_dict()
    assert e.value.field == "outcome"
    r.outcome = "SUCCESS"
    r.started_at = 100.0
    r.completed_at = 50.0
    with pytest.raises(ValidationError, match="completed_at must be >= started_at"):
        r.to_dict()
    with pytest.raises(ValidationError) as e:
        lull.BuildRecord(region="us-west2", success=True).to_dict()
    assert e.value.field == "duration_minutes or duration_seconds"
    with pytest.raises(ValidationError) as e:
        lull.BuildRecord(region="r", success=False, duration_minutes=1,
                         fatigues=[{"fatigue_reason": "x", "fatigue_duration_hours": 0}]).to_dict()
    assert e.value.field == "fatigues[0].fatigue_duration_hours"


def test_invalid_reports_are_refused_before_sending(tmp_path: Path) -> None:
    c = offline_client(tmp_path)
    try:
        t0 = time.monotonic()
        with pytest.raises(ValidationError):
            c.quick_report("w", True, -5)
        with pytest.raises(ValidationError) as e:
            c.lease(cost_units=0, job_type="x")
        assert e.value.field == "cost_units"
        assert time.monotonic() - t0 < 0.5
        assert c.pending_reports() == 0
    finally:
        c.close()


def test_seed_detailed_report_shape() -> None:
    from datetime import datetime, timezone

    r = lull.create_report("youtube_worker")
    r.data_verification.records_fetched = 200
    r.data_verification.records_processed = 195
    r.resource_metrics.memory_peak_mb = 128
    r.custom_metrics = {"categories_fetched": ["gaming"], "quota_used_today": 192}
    r.outcome = ExecutionOutcome.SUCCESS
    r.completed_at = datetime.now(timezone.utc)
    body = r.to_dict()
    assert body["outcome"] == "SUCCESS"
    assert body["data_verification"] == {"records_fetched": 200, "records_processed": 195}
    assert body["resource_metrics"] == {"memory_peak_mb": 128}
    assert body["duration_ms"] >= 0
    assert [o.value for o in ExecutionOutcome] == ["SUCCESS", "PARTIAL", "FAILURE", "TIMEOUT", "SKIPPED"]


def test_spool_handoff_and_tracker(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    c = offline_client(tmp_path, spool_dir=spool)
    try:
        d = c.quick_report("spooled", True, 1500, records_processed=3)
        assert d.via == "spool" and d.path is not None and d.path.parent == spool
        assert json.loads(d.path.read_text())["execution_id"] == d.id
        with pytest.raises(RuntimeError):
            with c.track("spooled") as report:
                report.data_verification.records_fetched = 1
                raise RuntimeError("source went away")
        files = sorted(spool.glob("*.json"), key=lambda p: p.stat().st_mtime)
        assert len(files) == 2
        body = json.loads(files[-1].read_text())
        assert body["outcome"] == "FAILURE"
        assert body["error_message"] == "source went away"
        assert body["completed_at"] >= body["started_at"]
        assert not list(spool.glob(".*")), "no temporary files are left behind"
    finally:
        c.close()


def test_submit_is_bounded_when_nats_is_down(tmp_path: Path) -> None:
    c = offline_client(tmp_path)
    try:
        t0 = time.monotonic()
        d = c.quick_report("offline", True, 10, timeout=0.8)
        assert time.monotonic() - t0 < 2.0
        assert d.via == "outbox" and d.pending
        assert c.pending_reports() == 1
        with pytest.raises(lull.Unavailable):
            c.hosts()
    finally:
        c.close()


def test_subjects_name_the_publisher() -> None:
    """Reports name the publishing host and lease requests the addon, so
    that the NATS permissions can bind each to its user."""
    from lull.config import Config
    from lull.reports.delivery import default_host_id

    cfg = Config(prefix="acme")
    assert cfg.report_subject("worker", "w1", "web1") == "acme.report.worker.web1.w1"
    assert cfg.report_subject("build", "us-west2") == "acme.report.build.us-west2"
    assert cfg.lease_request("indexer") == "acme.v1.lease.request.indexer"
    # A worker report naming its host goes out under that host...
    r = lull.create_report("w1", host_id="web1")
    r.outcome = ExecutionOutcome.SUCCESS
    assert r.prepare().subject(cfg) == "acme.report.worker.web1.w1"
    # ...one that names none, and a build, under this host.
    r = lull.create_report("w1")
    r.outcome = ExecutionOutcome.SUCCESS
    assert r.prepare().subject(cfg) == f"acme.report.worker.{default_host_id()}.w1"
    from lull.client import build_record

    b = build_record("us-west2", True, None, None, {"duration_minutes": 3.0})
    assert b.prepare().subject(cfg) == f"acme.report.build.{default_host_id()}.us-west2"


def test_paged_endpoints_are_read_whole() -> None:
    import asyncio
    from lull.queries import read_pages, _extend

    pages = {None: {"hosts": [1, 2], "next_cursor": "b"}, "b": {"hosts": [3], "next_cursor": "c"},
             "c": {"hosts": [4]}}
    asked = []

    async def request(endpoint: str, body: dict) -> dict:
        asked.append((endpoint, body.get("cursor"), body["limit"]))
        return dict(pages[body.get("cursor")])

    r = asyncio.run(read_pages(request, "hosts.list", {}, _extend("hosts")))
    assert r == {"hosts": [1, 2, 3, 4]}
    assert [a[1] for a in asked] == [None, "b", "c"]

    async def stuck(endpoint: str, body: dict) -> dict:
        return {"hosts": [], "next_cursor": "same"}

    with pytest.raises(lull.LullError, match="repeated cursor"):
        asyncio.run(read_pages(stuck, "hosts.list", {}, _extend("hosts")))

    # A page too large for one message is asked again, smaller.
    limits = []

    async def big(endpoint: str, body: dict) -> dict:
        limits.append(body["limit"])
        if body["limit"] > 250:
            raise lull.InvalidRequest("invalid_request", "reply too large: 2000000 bytes")
        return {"regions": {"r1": {}}}

    r = asyncio.run(read_pages(big, "regions.stats", {}, _extend("x")))
    assert limits == [1000, 500, 250] and r == {"regions": {"r1": {}}}

"""Reports against a real coordinator: each seed 003 call, read back through
lull.v1.workers.executions with scores; builds and fatigue events; a
duplicate counted once; a report submitted while NATS is down."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any, List, Optional

import pytest

import lull
from conftest import Infra, make_client, wait_for
from lull import ExecutionOutcome


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def stored(client: lull.Client, worker: str, n: int = 1) -> List[lull.ScoredExecution]:
    def get() -> Optional[List[lull.ScoredExecution]]:
        try:
            ex = client.workers_executions(worker, limit=50)
        except lull.NotFound:
            return None
        return ex if len(ex) >= n else None

    return wait_for(f"{n} stored runs of {worker}", get, 20.0, 0.1)


def test_quick_report(client: lull.Client) -> None:
    worker = unique("youtube_worker")
    d = client.quick_report(worker_name=worker, success=True, duration_ms=5000,
                            records_processed=150, records_fetched=150)
    assert d.via == "jetstream" and not d.duplicate
    [run] = stored(client, worker)
    assert run["execution_id"] == d.id
    assert run["outcome"] == "SUCCESS"
    assert run["duration_ms"] == 5000
    assert run["data_verification"]["records_processed"] == 150
    assert run["reliability_score"] == 100
    assert run["overall_score"] == 100
    assert run["quality_level"] == "EXCELLENT"


def test_detailed_usage(client: lull.Client) -> None:
    from datetime import datetime, timezone

    worker = unique("youtube_worker")
    report = lull.create_report(worker)
    report.data_verification.records_fetched = 200
    report.data_verification.records_processed = 195
    report.data_verification.records_failed = 5
    report.data_verification.api_calls_made = 4
    report.data_verification.api_calls_succeeded = 4
    report.data_verification.cache_writes = 4
    report.resource_metrics.memory_peak_mb = 128
    report.resource_metrics.redis_operations = 12
    report.custom_metrics = {"categories_fetched": ["gaming", "music", "entertainment"],
                             "quota_used_today": 192}
    report.outcome = ExecutionOutcome.SUCCESS
    report.completed_at = datetime.now(timezone.utc)
    d = client.submit_execution_report(report)
    assert d.via == "jetstream"
    [run] = stored(client, worker)
    assert run["custom_metrics"]["quota_used_today"] == 192
    assert run["data_verification"]["records_failed"] == 5
    assert run["resource_metrics"]["memory_peak_mb"] == 128
    assert run["reliability_score"] == 100
    # records 195/200, API 4/4 (docs/workers.md: the seed's run scores 98.1).
    assert run["data_quality_score"] == pytest.approx(98.1, abs=0.05)
    assert run["resource_efficiency_score"] == 100
    assert run["overall_score"] > 90
    stats = client.workers_stats(worker)
    assert stats["total_executions"] == 1
    assert client.workers_learning(worker)["worker_name"] == worker


def test_tracker_sync_and_async(client: lull.Client) -> None:
    worker = unique("sse_guardian")
    with client.track(worker) as report:
        report.custom_metrics["active_streams"] = 3
        time.sleep(0.05)
    with pytest.raises(ValueError):
        with client.track(worker):
            raise ValueError("bad row 17")

    async def run() -> None:
        async with client.track(worker) as report:
            report.outcome = ExecutionOutcome.PARTIAL
            await asyncio.sleep(0.01)

    asyncio.run(run())
    runs = {r["outcome"]: r for r in stored(client, worker, 3)}
    assert runs["SUCCESS"]["duration_ms"] >= 50
    assert runs["SUCCESS"]["custom_metrics"] == {"active_streams": 3}
    assert runs["FAILURE"]["error_message"] == "bad row 17"
    assert runs["FAILURE"]["reliability_score"] == 0
    assert runs["PARTIAL"]["reliability_score"] == 60


def test_duplicate_submit_counts_once(client: lull.Client) -> None:
    worker = unique("dup_worker")
    report = lull.create_report(worker)
    report.outcome = ExecutionOutcome.SUCCESS
    first = client.submit_execution_report(report)
    second = client.submit_execution_report(report)
    assert first.id == second.id
    assert not first.duplicate and second.duplicate
    stored(client, worker)
    # A later report of the same worker proves the duplicate was processed.
    client.quick_report(worker, True, 10)
    stored(client, worker, 2)
    assert client.workers_stats(worker)["total_executions"] == 2


def test_builds_and_fatigue_events(client: lull.Client) -> None:
    region = unique("us-west2")
    fatigue = {"fatigue_reason": "Queue timeout - 45min QUEUED", "fatigue_reason_code": "queue-timeout",
               "fatigue_time": time.time(), "fatigue_duration_hours": 4, "fatigue_type": "FATIGUED"}
    build_id = unique("abc123")
    d = client.record_build_result(region, False, build_id, duration_minutes=45.0,
                                   queue_wait_minutes=45.0, status="TIMEOUT",
                                   error="Build stuck in QUEUED for 45 minutes",
                                   timeout_reason="QUEUED", spot_price_per_hour=8.53,
                                   fatigues=[fatigue])
    assert d.via == "jetstream"
    again = client.record_build_result(region, False, build_id, duration_minutes=45.0, fatigues=[fatigue])
    assert again.duplicate
    client.record_build_result(region, True, duration_minutes=12.5)
    ev = client.record_fatigue_event(region, "Pool creation timeout", "beacon-timeout", "timed out")
    assert ev.kind == "fatigue"

    def region_stats() -> Optional[dict]:  # type: ignore[type-arg]
        doc = client.regions_stats(regions=[region])
        r = doc.get("regions", {}).get(region)
        return r if r and r["total_builds"] == 2 and r["fatigue_incidents"] == 2 else None

    r = wait_for(f"stats of {region}", region_stats, 20.0, 0.1)
    assert r["successes"] == 1 and r["failures"] == 1
    assert r["last_fatigue_reason_code"] == "beacon-timeout"
    sel = client.regions_select([region])
    names = [x["region"] for x in sel.get("ranked", [])] + [x["region"] for x in sel.get("excluded", [])]
    assert region in names


def test_report_waits_out_a_nats_outage(infra: Infra, tmp_path: Path) -> None:
    c = make_client(infra, tmp_path)
    worker = unique("outage_worker")
    try:
        c.quick_report(worker, True, 1)  # connected before the outage
        infra.nats.stop()
        t0 = time.monotonic()
        d = c.quick_report(worker, True, 2, records_processed=7, timeout=1.0)
        assert time.monotonic() - t0 < 3.0
        assert d.via == "outbox" and c.pending_reports() == 1
        infra.nats.start()
        wait_for("the outbox to drain", lambda: c.pending_reports() == 0, 30.0, 0.1)
        wait_for("the coordinator to serve again", infra.serving, 30.0, 0.2)
        runs = stored(c, worker, 2)
        assert d.id in {r["execution_id"] for r in runs}
        assert c.workers_stats(worker)["total_executions"] == 2
    finally:
        if not infra.nats.healthy():
            infra.nats.start()
        c.close()


def test_reports_and_lease_requests_name_their_publisher(infra: Infra, client: lull.Client) -> None:
    """On the wire: a worker report goes out on
    lull.report.worker.<its host_id>.<worker>, a build on
    lull.report.build.<this host>.<region>, a lease request on
    lull.v1.lease.request.<addon_id>; the coordinator stores the run and
    refuses a request whose addon_id is not the subject's."""
    import nats

    from lull.reports.delivery import default_host_id

    worker, region = unique("wire_worker"), unique("wire-region")
    seen: List[str] = []

    async def watch() -> Any:
        nc = await nats.connect(infra.nats.url)

        async def got(msg: Any) -> None:
            seen.append(msg.subject)

        await nc.subscribe("lull.report.>", cb=got)
        await nc.subscribe("lull.v1.lease.request.>", cb=got)
        await nc.flush()
        return nc

    loop = asyncio.new_event_loop()
    try:
        nc = loop.run_until_complete(watch())
        client.quick_report(worker, True, 10, host_id="py-wire-host")
        client.record_build_result(region, True, duration_minutes=1.0)
        with pytest.raises(lull.LeaseDenied):
            with client.lease(cost_units=1, host_id="no-such-host", wait=False, addon_id="py-wire"):
                pass
        # A request on py-wire's subject that claims another addon.
        core = client._core
        with pytest.raises(lull.Forbidden) as refused:
            core.run(core.request("lease.request.py-wire", {
                "addon_id": "someone-else", "job_type": "j", "cost_units": 1}), 6)
        assert "someone-else" in str(refused.value) and "py-wire" in str(refused.value)
        loop.run_until_complete(asyncio.sleep(0.5))
        loop.run_until_complete(nc.close())
    finally:
        loop.close()
    assert f"lull.report.worker.py-wire-host.{worker}" in seen, seen
    assert f"lull.report.build.{default_host_id()}.{region}" in seen, seen
    assert "lull.v1.lease.request.py-wire" in seen, seen
    [run] = stored(client, worker)
    assert run["host_id"] == "py-wire-host"

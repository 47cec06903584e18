"""Leases against a real coordinator: grant, heartbeats, progress, release;
a denial; the queue; a revoke (async body cancelled, sync flag and
callback); Unavailable; InvalidRequest; and the thin queries."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import lull
from conftest import HOST, Infra, make_client, wait_for


def lease_info(client: lull.Client, lease_id: str, where: str) -> Optional[Dict[str, Any]]:
    st = client.scheduler_status()
    return next((x for x in st["leases"][where] if x["lease_id"] == lease_id), None)


def test_granted_heartbeated_progressed_released(client: lull.Client, quiet_host: str) -> None:
    with client.lease(cost_units=20, job_type="reindex", host_id=quiet_host, wait=False,
                      addon_id="py-sync") as lease:
        assert lease.host_id == quiet_host and not lease.revoked
        granted = lease_info(client, lease.lease_id, "active")
        assert granted is not None
        # Outlive the 2 s TTL: only heartbeats keep the lease.
        wait_for("two heartbeats", lambda: (lease_info(client, lease.lease_id, "active") or {}).get(
            "last_heartbeat_at", 0) > granted["granted_at"] + 1.0, 10.0, 0.1)
        time.sleep(2.5)
        assert lease_info(client, lease.lease_id, "active") is not None and not lease.revoked
        assert lease.progress(50, "halfway", {"rows": 10})
    info = wait_for("the release", lambda: lease_info(client, lease.lease_id, "recent"), 10.0)
    assert info["state"] == "RELEASED"
    assert info["outcome"] == "success"
    assert info["progress_pct"] == 50


def test_denial_raises_lease_denied(client: lull.Client, quiet_host: str) -> None:
    with client.lease(cost_units=100, job_type="big", host_id=quiet_host, wait=False, addon_id="py-a"):
        with pytest.raises(lull.LeaseDenied) as e:
            with client.lease(cost_units=100, job_type="big", host_id=quiet_host, wait=False,
                              addon_id="py-b"):
                pass
    assert e.value.reason_code == "capacity_exceeded"
    assert "Capacity exceeded" in (e.value.reason or "")
    assert e.value.retry_after_sec is not None and e.value.retry_after_sec > 0


def test_queue_waiter_granted_after_release(client: lull.Client, quiet_host: str) -> None:
    got: List[lull.Lease] = []
    errors: List[BaseException] = []

    def waiter() -> None:
        try:
            with client.lease(cost_units=100, job_type="queued", host_id=quiet_host, wait=True,
                              wait_timeout=30, addon_id="py-waiter") as lease:
                got.append(lease)
                lease.progress(100, "done")
        except lull.LullError as e:
            errors.append(e)

    holder = client.lease(cost_units=100, job_type="big", host_id=quiet_host, wait=False,
                          addon_id="py-holder")
    with holder:
        t = threading.Thread(target=waiter)
        t.start()
        wait_for("the waiter to be queued",
                 lambda: client.scheduler_status().get("queue_length", 0) >= 1, 15.0, 0.1)
        assert not got
    t.join(30)
    assert not errors, errors
    assert len(got) == 1
    info = wait_for("the waiter's release", lambda: lease_info(client, got[0].lease_id, "recent"), 10.0)
    assert info["state"] == "RELEASED" and info["addon_id"] == "py-waiter"


def test_revoke_cancels_an_async_body(client: lull.Client, quiet_host: str) -> None:
    reached_end = False

    async def main() -> float:
        nonlocal reached_end
        t0 = time.monotonic()
        with pytest.raises(lull.LeaseRevoked) as e:
            async with client.lease(cost_units=10, job_type="async", host_id=quiet_host,
                                    wait=False, addon_id="py-async") as lease:
                await lease.progress(10, "started")
                assert await client.aio.revoke(lease.lease_id, "make room")
                await asyncio.sleep(30)
                reached_end = True
        assert e.value.state == "REVOKED" and e.value.reason == "make room"
        return time.monotonic() - t0

    assert asyncio.run(main()) < 10
    assert not reached_end


def test_revoke_sets_the_sync_flag_and_calls_back(client: lull.Client, quiet_host: str) -> None:
    called = threading.Event()
    with client.lease(cost_units=10, job_type="sync", host_id=quiet_host, wait=False,
                      addon_id="py-flag", on_revoke=lambda lease: called.set()) as lease:
        assert client.revoke(lease.lease_id, "operator")
        wait_for("the revoked flag", lambda: lease.revoked, 10.0, 0.05)
        assert called.wait(5)
        assert lease.ended is not None and lease.ended.state == "REVOKED"
        with pytest.raises(lull.LeaseRevoked):
            lease.check()


def test_unavailable_when_no_coordinator_answers(infra: Infra, tmp_path: Path) -> None:
    c = make_client(infra, tmp_path, prefix="nobody", request_timeout=1.0)
    try:
        t0 = time.monotonic()
        with pytest.raises(lull.Unavailable):
            with c.lease(cost_units=10, job_type="x", wait=False, addon_id="py-none"):
                pass
        assert time.monotonic() - t0 < 5
    finally:
        c.close()


def test_invalid_request_and_not_found(client: lull.Client) -> None:
    core = client._core
    with pytest.raises(lull.InvalidRequest):
        core.run(core.request("lease.request", {"addon_id": "x"}), 6)
    with pytest.raises(lull.NotFound):
        client.workers_stats("never_reported_worker")


def test_queries(client: lull.Client, quiet_host: str) -> None:
    hosts = client.hosts()
    me = next(h for h in hosts if h["host_id"] == HOST)
    assert me["state"] == "QUIET" and not me["stale"]
    assert client.host(HOST)["quiet"]["state"] == "QUIET"
    assert isinstance(client.quiet_forecast(HOST), dict)
    assert isinstance(client.learning_system(), dict)
    assert isinstance(client.data_quality_summary(), dict)

    async def via_aio() -> None:
        assert any(h["host_id"] == HOST for h in await client.aio.hosts())

    asyncio.run(via_aio())

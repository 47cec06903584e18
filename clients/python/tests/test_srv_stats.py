"""`$SRV.STATS` counts the coordinator's error replies, read by a client no
one here wrote: nats-py's raw request, no `lull` code involved. An error
reply keeps the protocol's JSON body and the micro error headers."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List

import nats

from conftest import Infra


async def _stats(nc: Any) -> List[Dict[str, Any]]:
    msg = await nc.request("$SRV.STATS.lull-coordinator", b"", timeout=2)
    doc: Dict[str, Any] = json.loads(msg.data)
    assert doc["type"] == "io.nats.micro.v1.stats_response", doc
    endpoints: List[Dict[str, Any]] = doc["endpoints"]
    return endpoints


def _endpoint(endpoints: List[Dict[str, Any]], subject: str) -> Dict[str, Any]:
    return next(e for e in endpoints if e["subject"] == subject)


async def _check(url: str) -> None:
    nc = await nats.connect(url)
    try:
        before = _endpoint(await _stats(nc), "lull.v1.hosts.get")
        # Not JSON: an error reply.
        reply = await nc.request("lull.v1.hosts.get", b"{not json", timeout=2)
        assert reply.headers is not None, reply
        assert reply.headers.get("Nats-Service-Error-Code") == "400", reply.headers
        body = json.loads(reply.data)
        assert body["error"]["code"] == "invalid_request", body
        # A good request (unknown host): not_found is an error too.
        reply = await nc.request("lull.v1.hosts.get", b'{"host_id": "no-such-host"}', timeout=2)
        assert json.loads(reply.data)["error"]["code"] == "not_found"
        after = _endpoint(await _stats(nc), "lull.v1.hosts.get")
        assert after["num_errors"] == before["num_errors"] + 2, (before, after)
        assert after["num_requests"] == before["num_requests"] + 2, (before, after)
        assert "no-such-host" in after["last_error"], after
    finally:
        await nc.close()


def test_srv_stats_counts_error_replies(infra: Infra) -> None:
    asyncio.run(_check(infra.nats.url))

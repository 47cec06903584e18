#!/usr/bin/env python3
"""Example Lull addon in Python (nats-py): asks the coordinator for a
heavy-work lease, heartbeats while it works, reports progress, stops at once
when the lease is revoked or expires (it listens on
``<prefix>.lease.events.<lease_id>``), and releases the lease with an
outcome when done.

It prints one JSON object per line on stdout (``granted``, ``progress``,
``revoked``, ``released``, ...) so scripts and tests can follow it.

Exit codes: 0 work done and released; 3 the lease was revoked or expired
(work stopped); 75 no lease within --wait-timeout; 130 stopped by SIGINT or
SIGTERM (the lease is released as `cancelled`); 1 any other error.

    pip install nats-py
    python3 lull_addon.py --cost 20 --work-sec 5
"""

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time

import nats
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout

EXIT_REVOKED = 3
EXIT_NO_LEASE = 75


class ServiceError(Exception):
    """An error reply of the coordinator (micro error headers)."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


class Lull:
    """Request-reply helpers over the coordinator's ``<prefix>.v1.*`` endpoints."""

    def __init__(self, nc, prefix, timeout):
        self.nc = nc
        self.prefix = prefix.rstrip(".")
        self.timeout = timeout

    def endpoint(self, name):
        return f"{self.prefix}.v1.{name}"

    def events_subject(self, lease_id):
        return f"{self.prefix}.lease.events.{lease_id}"

    async def call(self, name, body):
        msg = await self.nc.request(
            self.endpoint(name), json.dumps(body).encode(), timeout=self.timeout
        )
        headers = msg.headers or {}
        if "Nats-Service-Error" in headers:
            try:
                err = json.loads(msg.data)["error"]
                raise ServiceError(err.get("code", "internal"), err.get("message", ""))
            except (ValueError, KeyError, TypeError):
                raise ServiceError(
                    headers.get("Nats-Service-Error-Code", "internal"),
                    headers.get("Nats-Service-Error", ""),
                )
        return json.loads(msg.data)


async def acquire(lull, request, wait_timeout):
    """Asks until granted, honouring retry_after_sec (plus up to 20 % jitter)."""
    deadline = time.monotonic() + wait_timeout
    while True:
        try:
            resp = await lull.call("lease.request", request)
        except (NoRespondersError, NatsTimeout) as e:
            resp = {"approved": False, "reason": f"coordinator unreachable: {e!r}"}
        if resp.get("approved"):
            return resp
        left = deadline - time.monotonic()
        emit(
            "denied",
            reason=resp.get("reason"),
            reason_code=resp.get("reason_code"),
            retry_after_sec=resp.get("retry_after_sec"),
        )
        if left <= 0:
            return None
        delay = float(resp.get("retry_after_sec") or 5.0)
        delay = max(0.5, delay) * (1.0 + 0.2 * random.random())
        await asyncio.sleep(min(delay, left))


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nats-url", default=os.environ.get("LULL_NATS_URL", "nats://127.0.0.1:4222"))
    ap.add_argument("--prefix", default=os.environ.get("LULL_SUBJECT_PREFIX", "lull"))
    ap.add_argument("--addon-id", default="python_example")
    ap.add_argument("--job-type", default="example")
    ap.add_argument("--host", default=None, help="host id; omit to let the coordinator place the job")
    ap.add_argument("--cost", type=int, default=10, help="cost units, 1..100")
    ap.add_argument("--priority", default="NORMAL", choices=["LOW", "NORMAL", "HIGH"])
    ap.add_argument("--work-sec", type=float, default=5.0, help="how long the fake work takes")
    ap.add_argument("--steps", type=int, default=10, help="progress reports during the work")
    ap.add_argument("--wait-timeout", type=float, default=60.0)
    ap.add_argument("--timeout", type=float, default=5.0, help="request timeout, seconds")
    args = ap.parse_args()

    nc = await nats.connect(servers=[args.nats_url], name=f"lull-addon-{args.addon_id}")
    lull = Lull(nc, args.prefix, args.timeout)
    request = {
        "addon_id": args.addon_id,
        "job_type": args.job_type,
        "cost_units": args.cost,
        "priority": args.priority,
        "expected_duration_sec": args.work_sec,
    }
    if args.host:
        request["host_id"] = args.host

    grant = await acquire(lull, request, args.wait_timeout)
    if grant is None:
        emit("no_lease")
        await nc.drain()
        return EXIT_NO_LEASE

    lease_id = grant["lease_id"]
    state = {"token": grant["token"]}
    limits = grant.get("limits") or {}
    interval = float(limits.get("heartbeat_interval_sec") or 10.0)
    ttl = float(limits.get("heartbeat_ttl_sec") or 30.0)
    interval = max(0.1, min(interval, ttl / 2))
    ended = asyncio.Event()
    why = {}
    emit("granted", lease_id=lease_id, host_id=grant.get("host_id"),
         heartbeat_interval_sec=interval, heartbeat_ttl_sec=ttl)

    def stop(kind, reason):
        if not ended.is_set():
            why.update(kind=kind, reason=reason)
            ended.set()

    # A revoke is pushed on the events subject: stop at once.
    async def on_event(msg):
        try:
            ev = json.loads(msg.data)
        except ValueError:
            return
        if ev.get("lease_id") == lease_id and ev.get("event") in ("REVOKED", "EXPIRED", "RELEASED"):
            stop(ev["event"], ev.get("reason"))

    sub = await nc.subscribe(lull.events_subject(lease_id), cb=on_event)

    # Heartbeats keep the lease; a reply with ok=false means it is over.
    async def heartbeat():
        while not ended.is_set():
            await asyncio.sleep(interval)
            try:
                hb = await lull.call("lease.heartbeat", {"lease_id": lease_id, "token": state["token"]})
            except ServiceError as e:
                if e.code in ("not_found", "forbidden"):
                    stop("LOST", e.message)
                    return
                continue
            except (NoRespondersError, NatsTimeout):
                continue  # the coordinator may be restarting; keep trying
            if not hb.get("ok"):
                stop(hb.get("state", "LOST"), hb.get("reason"))
                return
            if hb.get("token"):
                state["token"] = hb["token"]  # a replacement token: use it from now on

    hb_task = asyncio.create_task(heartbeat())

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, "CANCELLED", f"signal {int(sig)}")

    # The fake work: a number of steps, each reporting progress.
    step_sec = args.work_sec / max(1, args.steps)
    done_steps = 0
    for i in range(1, args.steps + 1):
        try:
            await asyncio.wait_for(ended.wait(), timeout=step_sec)
        except asyncio.TimeoutError:
            pass
        if ended.is_set():
            break
        done_steps = i
        pct = 100.0 * i / args.steps
        try:
            await lull.call("lease.report", {
                "lease_id": lease_id, "token": state["token"],
                "progress_pct": pct, "message": f"step {i}/{args.steps}",
                "metrics": {"steps_done": i},
            })
        except (ServiceError, NoRespondersError, NatsTimeout) as e:
            emit("report_failed", error=str(e))
        emit("progress", lease_id=lease_id, progress_pct=pct)

    hb_task.cancel()
    code = 0
    if ended.is_set() and why.get("kind") != "CANCELLED":
        # Revoked or expired: the lease is gone; nothing to release.
        emit("revoked", lease_id=lease_id, state=why.get("kind"), reason=why.get("reason"),
             steps_done=done_steps)
        code = EXIT_REVOKED
    else:
        outcome = "success" if not ended.is_set() else "cancelled"
        try:
            r = await lull.call("lease.release", {"lease_id": lease_id, "token": state["token"], "outcome": outcome})
            emit("released", lease_id=lease_id, outcome=outcome, ok=r.get("ok"))
            if outcome == "cancelled":
                code = 130
        except (ServiceError, NoRespondersError, NatsTimeout) as e:
            emit("release_failed", lease_id=lease_id, error=str(e))
            code = 1
    await sub.unsubscribe()
    await nc.drain()
    return code


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(130)

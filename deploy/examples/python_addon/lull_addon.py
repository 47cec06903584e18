#!/usr/bin/env python3
"""Example Lull addon built on the `lull` Python package: asks the
coordinator for a heavy-work lease, does some fake work while the package
heartbeats in the background, reports progress, stops at once when the lease
is revoked or expires, and releases the lease with an outcome when done.

It prints one JSON object per line on stdout (``granted``, ``denied``,
``progress``, ``revoked``, ``released``, ...) so scripts and tests can
follow it.

Exit codes (the same as ``lullctl run``): 0 work done and released; 3 the
lease was revoked or expired (work stopped); 75 no lease within
--wait-timeout: the coordinator answered, but no; 69 the coordinator could
not be asked (NATS down, or no coordinator answering) when the wait ended;
130 stopped by SIGINT or SIGTERM (the lease is released as `cancelled`);
1 any other error.

    pip install ./clients/python        # from the repository root
    python3 lull_addon.py --cost 20 --work-sec 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, Optional

try:
    import lull
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "clients" / "python" / "src"))
    import lull

EXIT_REVOKED = 3
EXIT_NO_LEASE = 75
EXIT_UNAVAILABLE = 69
EXIT_INTERRUPTED = 130


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--nats-url", default=os.environ.get("LULL_NATS_URL", "nats://127.0.0.1:4222"),
                    help="NATS URL, or a comma-separated list of a cluster's URLs")
    ap.add_argument("--prefix", default=os.environ.get("LULL_SUBJECT_PREFIX", "lull"))
    ap.add_argument("--addon-id", default="python_example")
    ap.add_argument("--job-type", default="example")
    ap.add_argument("--host", default=None, help="host id; omit to let the coordinator place the job")
    ap.add_argument("--cost", type=int, default=10, help="cost units, 1..100")
    ap.add_argument("--priority", default="NORMAL", choices=["LOW", "NORMAL", "HIGH"])
    ap.add_argument("--work-sec", type=float, default=5.0, help="how long the fake work takes")
    ap.add_argument("--steps", type=int, default=10, help="progress reports during the work")
    ap.add_argument("--wait-timeout", type=float, default=60.0)
    ap.add_argument("--queue", action="store_true",
                    help="wait in the coordinator's queue instead of asking again after each denial")
    ap.add_argument("--timeout", type=float, default=5.0, help="request timeout, seconds")
    return ap.parse_args()


def acquire(client: lull.Client, args: argparse.Namespace, stop: threading.Event,
            stack: contextlib.ExitStack) -> Optional[lull.Lease]:
    """Asks until granted: in the queue with --queue, else again after each
    denial, honouring retry_after_sec (plus up to 20 % jitter). The lease is
    entered on ``stack``, which releases it on exit. Returns None when the
    wait ends without a lease; raises :class:`lull.Unavailable` when the last
    attempt could not reach a coordinator (busy and broken stay apart)."""
    def ctx(wait: bool, wait_timeout: float) -> lull.LeaseContext:
        return client.lease(cost_units=args.cost, job_type=args.job_type, priority=args.priority,
                            host_id=args.host, wait=wait, wait_timeout=wait_timeout,
                            addon_id=args.addon_id, expected_duration_sec=args.work_sec,
                            on_revoke=lambda lease: stop.set())

    if args.queue:
        return stack.enter_context(ctx(True, args.wait_timeout))
    deadline = time.monotonic() + args.wait_timeout
    unreachable: Optional[lull.Unavailable] = None
    while not stop.is_set():
        try:
            return stack.enter_context(ctx(False, 0.0))
        except lull.LeaseDenied as d:
            emit("denied", reason=d.reason, reason_code=d.reason_code, retry_after_sec=d.retry_after_sec)
            delay = max(0.5, d.retry_after_sec or 5.0) * (1 + 0.2 * random.random())
            unreachable = None
        except lull.Unavailable as e:
            emit("unreachable", error=str(e))
            delay = 1.0
            unreachable = e
        left = deadline - time.monotonic()
        if left <= 0:
            if unreachable is not None:
                raise unreachable
            return None
        stop.wait(min(delay, left))
    return None


def main() -> int:
    args = parse_args()
    client = lull.Client(lull.Config(servers=lull.config.split_servers(args.nats_url),
                                     prefix=args.prefix, request_timeout=args.timeout,
                                     name=f"lull-addon-{args.addon_id}"))
    stop = threading.Event()
    interrupted = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        interrupted.set()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    try:
        with contextlib.ExitStack() as stack:
            lease = acquire(client, args, stop, stack)
            if lease is None:
                if interrupted.is_set():
                    return EXIT_INTERRUPTED
                emit("no_lease")
                return EXIT_NO_LEASE
            limits = lease.limits or {}
            emit("granted", lease_id=lease.lease_id, host_id=lease.host_id,
                 heartbeat_interval_sec=limits.get("heartbeat_interval_sec"),
                 heartbeat_ttl_sec=limits.get("heartbeat_ttl_sec"))
            step_sec = args.work_sec / max(1, args.steps)
            done = 0
            for i in range(1, args.steps + 1):
                if stop.wait(step_sec):
                    break
                done = i
                pct = 100.0 * i / args.steps
                try:
                    lease.progress(pct, f"step {i}/{args.steps}", {"steps_done": i})
                except lull.LullError as e:
                    emit("report_failed", error=str(e))
                emit("progress", lease_id=lease.lease_id, progress_pct=pct)
            if lease.revoked:
                end = lease.ended
                emit("revoked", lease_id=lease.lease_id, state=end.state if end else None,
                     reason=end.reason if end else None, steps_done=done)
                return EXIT_REVOKED
            outcome = "cancelled" if interrupted.is_set() else "success"
            try:
                ok = lease.release(outcome)
            except lull.LullError as e:
                emit("release_failed", lease_id=lease.lease_id, error=str(e))
                return 1
            emit("released", lease_id=lease.lease_id, outcome=outcome, ok=ok)
            return EXIT_INTERRUPTED if interrupted.is_set() else 0
    except lull.LeaseTimeout:
        emit("no_lease")
        return EXIT_NO_LEASE
    except lull.Unavailable as e:
        emit("unavailable", error=str(e))
        return EXIT_UNAVAILABLE
    except lull.LullError as e:
        emit("error", error=str(e))
        return 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())

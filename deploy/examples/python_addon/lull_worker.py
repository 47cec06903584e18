#!/usr/bin/env python3
"""Example scheduled worker that reports every run to Lull (seed 003) with
the `lull` package: once with ``lull.quick_report`` after the fact, and
once with the ``lull.track`` context manager, which times the run and marks
it FAILURE with the exception's message if the body raises.

Reports are durable: with an agent spool directory (``LULL_SPOOL_DIR``, or
``/var/spool/lull`` when it exists) they are handed to the agent; otherwise
they are published to JetStream and, while NATS is down, kept in the
package's outbox until it is back.

    pip install ./clients/python        # from the repository root
    python3 lull_worker.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

try:
    import lull
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "clients" / "python" / "src"))
    import lull


def fetch_records(n: int) -> list[dict[str, int]]:
    """Stands in for the worker's real source."""
    time.sleep(random.uniform(0.01, 0.05))
    return [{"id": i} for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--nats-url", default=os.environ.get("LULL_NATS_URL", "nats://127.0.0.1:4222"))
    ap.add_argument("--worker", default="example_worker")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--fail", action="store_true", help="make the tracked run raise")
    args = ap.parse_args()
    lull.configure(servers=lull.config.split_servers(args.nats_url))

    for _ in range(args.runs):
        # 1. After the fact, in one call.
        t0 = time.monotonic()
        rows = fetch_records(150)
        d = lull.quick_report(worker_name=args.worker, success=True,
                              duration_ms=(time.monotonic() - t0) * 1000,
                              records_processed=len(rows), records_fetched=len(rows))
        print(json.dumps({"event": "reported", "id": d.id, "via": d.via}), flush=True)

        # 2. Timed by the context manager.
        tracker = lull.track(args.worker)
        try:
            with tracker as report:
                rows = fetch_records(200)
                report.data_verification.records_fetched = len(rows)
                report.data_verification.records_processed = len(rows) - 5
                report.data_verification.records_failed = 5
                report.resource_metrics.memory_peak_mb = 128
                report.custom_metrics = {"batches": 4}
                if args.fail:
                    raise RuntimeError("upstream API returned 503")
        except RuntimeError as e:
            print(json.dumps({"event": "failed", "error": str(e)}), flush=True)
        if tracker.delivery is not None:
            print(json.dumps({"event": "reported", "id": tracker.delivery.id,
                              "via": tracker.delivery.via}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The examples in deploy/examples/python_addon run against the suite's
coordinator: the worker's reports are stored, the addon gets, uses and
releases a lease."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List

import lull
from conftest import REPO, Infra, wait_for

EXAMPLES = REPO / "deploy" / "examples" / "python_addon"


def run(script: str, infra: Infra, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LULL_SPOOL_DIR": "", "LULL_OUTBOX_DIR": str(tmp / "outbox"),
           "LULL_NATS_URL": infra.nats.url}
    return subprocess.run([sys.executable, str(EXAMPLES / script), "--nats-url", infra.nats.url, *args],
                          capture_output=True, text=True, timeout=60, env=env)


def lines(out: str) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_worker_example(infra: Infra, client: lull.Client, tmp_path: Path) -> None:
    worker = f"example_worker-{uuid.uuid4().hex[:6]}"
    p = run("lull_worker.py", infra, tmp_path, "--worker", worker, "--fail")
    assert p.returncode == 0, p.stderr
    assert [e["via"] for e in lines(p.stdout) if e["event"] == "reported"] == ["jetstream", "jetstream"]
    runs = wait_for("two stored runs", lambda: (lambda r: r if len(r) == 2 else None)(
        client.workers_executions(worker)), 20.0, 0.1)
    assert sorted(r["outcome"] for r in runs) == ["FAILURE", "SUCCESS"]
    failed = next(r for r in runs if r["outcome"] == "FAILURE")
    assert failed["error_message"] == "upstream API returned 503"


def test_addon_example(infra: Infra, quiet_host: str, tmp_path: Path) -> None:
    p = run("lull_addon.py", infra, tmp_path, "--host", quiet_host, "--cost", "20",
            "--work-sec", "1", "--steps", "2")
    assert p.returncode == 0, p.stdout + p.stderr
    events = [e["event"] for e in lines(p.stdout)]
    assert events == ["granted", "progress", "progress", "released"], p.stdout


def test_addon_example_tells_unreachable_from_denied(infra: Infra, tmp_path: Path) -> None:
    # NATS is up but no coordinator serves this prefix: "could not be asked", 69, not "denied".
    p = run("lull_addon.py", infra, tmp_path, "--prefix", f"nobody{uuid.uuid4().hex[:6]}",
            "--cost", "20", "--wait-timeout", "1.5", "--timeout", "0.5")
    assert p.returncode == 69, p.stdout + p.stderr
    events = [e["event"] for e in lines(p.stdout)]
    assert "denied" not in events and events[-1] == "unavailable", p.stdout
    assert "unreachable" in events, p.stdout
    # NATS itself is down (nothing listens on the port): 69 as well.
    p = subprocess.run([sys.executable, str(EXAMPLES / "lull_addon.py"), "--nats-url", "nats://127.0.0.1:9",
                        "--cost", "20", "--wait-timeout", "1", "--timeout", "0.5"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "LULL_SPOOL_DIR": "", "LULL_OUTBOX_DIR": str(tmp_path / "ob2")})
    assert p.returncode == 69, p.stdout + p.stderr
    assert "denied" not in [e["event"] for e in lines(p.stdout)], p.stdout

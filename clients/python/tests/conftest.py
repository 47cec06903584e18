"""Session fixtures: a real nats-server (JetStream), a throwaway Postgres
cluster and a lull-coordinator, all on free 127.0.0.1 ports in temporary
directories (as the Rust harness in tests/src does), and a feeder thread
publishing synthetic idle snapshots for one host so that leases can be
granted there.

Binaries: ``nats-server`` on PATH (or ``LULL_TEST_NATS_SERVER``); Postgres'
``initdb``/``postgres``/``createdb`` on PATH or under
``/usr/lib/postgresql/*/bin`` (or ``LULL_TEST_PG_BIN_DIR``); the coordinator
at ``LULL_COORDINATOR_BIN``, else ``$CARGO_TARGET_DIR/debug``, else the
repository's ``target/debug``. When running as root, Postgres runs as the
``postgres`` OS user.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar

import pytest

import lull

T = TypeVar("T")

HOST = "py-host-1"
REPO = Path(__file__).resolve().parents[3]
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, fn: Callable[[], Optional[T]], timeout: float = 20.0,
             every: float = 0.1) -> T:
    """Polls ``fn`` until it returns something truthy; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            r = fn()
            if r:
                return r
        except (lull.LullError, OSError, KeyError, ValueError) as e:
            last_error = e
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def _which(name: str, env: str) -> str:
    given = os.environ.get(env)
    if given:
        return given
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found on PATH (or set {env})")
    return found


def _pg_bin_dir() -> Path:
    given = os.environ.get("LULL_TEST_PG_BIN_DIR")
    if given:
        return Path(given)
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).parent
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()],
        reverse=True,
    )
    if not versions:
        pytest.fail("Postgres server binaries not found (install postgresql or set LULL_TEST_PG_BIN_DIR)")
    return versions[0]


class Proc:
    """A child process with its log file; killed at teardown."""

    def __init__(self, name: str, args: List[str], log: Path, env: Optional[Dict[str, str]] = None,
                 user: Optional[str] = None, cwd: Optional[Path] = None) -> None:
        self.name, self.args, self.log, self.env, self.user, self.cwd = name, args, log, env, user, cwd
        self.p: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> "Proc":
        out = open(self.log, "ab")
        kwargs: Dict[str, Any] = {}
        if self.user is not None:
            kwargs["user"] = self.user
        self.p = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                  cwd=self.cwd, start_new_session=True, **kwargs)
        out.close()
        return self

    def running(self) -> bool:
        return self.p is not None and self.p.poll() is None

    def stop(self, sig: int = 15, timeout: float = 10.0) -> None:
        if self.p is None:
            return
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.p = None


class Nats:
    """``nats-server -js`` on a free port; stop/start keeps port and store."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "nats"
        self.dir.mkdir()
        self.port, self.monitor = free_port(), free_port()
        self.proc = Proc("nats-server", [
            _which("nats-server", "LULL_TEST_NATS_SERVER"), "-js", "-a", "127.0.0.1",
            "-p", str(self.port), "-m", str(self.monitor), "-sd", str(self.dir / "store"),
        ], self.dir / "nats.log")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def start(self) -> None:
        self.proc.start()
        wait_for("nats-server /healthz", lambda: self.healthy() or (
            None if self.proc.running() else pytest.fail(f"nats-server died:\n{_tail(self.proc.log)}")
        ), STARTUP_TIMEOUT, 0.05)

    def stop(self) -> None:
        self.proc.stop()


class Postgres:
    """A throwaway cluster with the database ``lull``."""

    def __init__(self, base: Path) -> None:
        self.bin = _pg_bin_dir()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.dir = Path(tempfile.mkdtemp(prefix="lull-py-pg-", dir="/tmp"))
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self.proc = Proc("postgres", [
            str(self.bin / "postgres"), "-D", str(self.dir / "data"), "-p", str(self.port),
            "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "shared_buffers=16MB", "-c", "max_connections=100",
            "-c", "dynamic_shared_memory_type=mmap", "-c", "logging_collector=off",
        ], self.dir / "postgres.log", env={**os.environ, "LC_ALL": "C"}, user=self.user, cwd=self.dir)

    def tool(self, name: str) -> str:
        """A client tool beside the server binaries, else on PATH."""
        p = self.bin / name
        return str(p) if p.exists() else (shutil.which(name) or name)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/lull"

    def _run(self, args: List[str]) -> None:
        kwargs: Dict[str, Any] = {"user": self.user} if self.user else {}
        r = subprocess.run(args, capture_output=True, env={**os.environ, "LC_ALL": "C"},
                           cwd=self.dir, timeout=90, **kwargs)
        if r.returncode != 0:
            pytest.fail(f"{args[0]} failed: {r.stdout.decode()}{r.stderr.decode()}")

    def start(self) -> None:
        self._run([str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-A", "trust",
                   "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"])
        self.proc.start()

        def up() -> bool:
            if not self.proc.running():
                pytest.fail(f"postgres died:\n{_tail(self.proc.log)}")
            r = subprocess.run([self.tool("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                               capture_output=True)
            return r.returncode == 0

        wait_for("postgres", up, STARTUP_TIMEOUT, 0.1)
        self._run([self.tool("createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                   "-U", "postgres", "lull"])

    def stop(self) -> None:
        self.proc.stop(sig=3)
        shutil.rmtree(self.dir, ignore_errors=True)


def coordinator_bin() -> str:
    given = os.environ.get("LULL_COORDINATOR_BIN")
    if given:
        return given
    target = os.environ.get("CARGO_TARGET_DIR")
    for d in ([Path(target)] if target else []) + [REPO / "target"]:
        p = d / "debug" / "lull-coordinator"
        if p.exists():
            return str(p)
    pytest.fail("lull-coordinator not built (cargo build -p lull-coordinator, or set LULL_COORDINATOR_BIN)")


async def _answers(url: str, subject: str) -> bool:
    import nats

    try:
        nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
    except (OSError, asyncio.TimeoutError, nats.errors.Error):
        return False
    try:
        await nc.request(subject, b"{}", timeout=0.5)
        return True
    except (nats.errors.Error, asyncio.TimeoutError):
        return False
    finally:
        await nc.close()


def snapshot(host: str, seq: int, period: float) -> bytes:
    now = time.time()
    return json.dumps({
        "host_id": host, "seq": seq, "collected_at": now, "interval_sec": period,
        "host": {
            "cpu_pct": 2.0, "cpu_count": 8, "load_avg": [0.16, 0.0, 0.0],
            "mem_total_bytes": 8 << 30, "mem_used_pct": 20.0, "swap_used_pct": 0.0,
            "disks": [{"mount": "/", "total_bytes": 100 << 30, "free_bytes": 60 << 30, "used_pct": 40.0}],
            "net": [{"iface": "eth0", "rx_bytes": 1000, "tx_bytes": 2000, "rx_bps": 10.0, "tx_bps": 20.0}],
            "uptime_sec": 1000, "boot_time": now - 1000, "pressure": None,
        },
        "process": [], "api": None, "addons": {}, "errors": [],
    }).encode()


class Feeder:
    """Publishes an idle snapshot of :data:`HOST` every ``period`` seconds
    on its own thread, reconnecting across NATS restarts."""

    def __init__(self, url: str, period: float = 0.3) -> None:
        self.url, self.period = url, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        import nats

        nc = await nats.connect(self.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        seq = 0
        while not self._stop.is_set():
            seq += 1
            try:
                if nc.is_connected:
                    await nc.publish(f"lull.stats.{HOST}", snapshot(HOST, seq, self.period))
                    await nc.flush(timeout=1)
            except (nats.errors.Error, asyncio.TimeoutError, OSError):
                pass
            await asyncio.sleep(self.period)
        await nc.close()

    def start(self) -> "Feeder":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


class Infra:
    """Everything the suite runs against."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.nats = Nats(base)
        self.pg = Postgres(base)
        self.coord_log = base / "coordinator.log"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LULL_")},
            "LULL_NATS_URL": self.nats.url,
            "LULL_DATABASE_URL": self.pg.url,
            "LULL_METRICS_ADDR": f"127.0.0.1:{free_port()}",
            "LULL_LOG": "info",
            "LULL_LEASE__HEARTBEAT_TTL_SEC": "2",
            "LULL_LEASE__RATE_PER_SEC": "100",
            "LULL_LEASE__BURST": "100",
            "LULL_LEASE__RETRY__MIN_SEC": "0.5",
            "LULL_INGEST__REPORTS_FETCH_WAIT_SEC": "0.2",
        }
        self.coord = Proc("lull-coordinator", [coordinator_bin()], self.coord_log, env=env)
        self.feeder = Feeder(self.nats.url)

    def coordinator_logs(self) -> str:
        return _tail(self.coord_log)

    def serving(self) -> bool:
        if not self.coord.running():
            pytest.fail(f"lull-coordinator exited:\n{self.coordinator_logs()}")
        return asyncio.run(_answers(self.nats.url, "lull.v1.lease.request")) and asyncio.run(
            _answers(self.nats.url, "lull.v1.workers.stats")
        )

    def start(self) -> None:
        self.nats.start()
        self.pg.start()
        self.coord.start()
        wait_for("the coordinator to lead (lease.request answers)", self.serving, STARTUP_TIMEOUT, 0.2)
        self.feeder.start()

    def stop(self) -> None:
        self.feeder.stop()
        self.coord.stop()
        self.pg.stop()
        self.nats.stop()


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    base = Path(tempfile.mkdtemp(prefix="lull-py-"))
    inf = Infra(base)
    try:
        inf.start()
        yield inf
    finally:
        inf.stop()
        shutil.rmtree(base, ignore_errors=True)


def make_client(infra: Infra, tmp: Path, **overrides: Any) -> lull.Client:
    cfg = lull.Config(servers=[infra.nats.url], spool_dir=None, outbox_dir=tmp / "outbox",
                      submit_timeout=3.0, request_timeout=5.0, outbox_retry_sec=0.3,
                      queue_probe_sec=1.0)
    return lull.Client(cfg, **overrides)


@pytest.fixture(scope="session")
def client(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[lull.Client]:
    c = make_client(infra, tmp_path_factory.mktemp("client"))
    yield c
    c.close()


@pytest.fixture
def quiet_host(infra: Infra, client: lull.Client) -> str:
    """Waits until :data:`HOST` is QUIET, fresh and leasable (grace over)."""

    def ready() -> bool:
        st = client.scheduler_status()
        now = time.time()
        h = next((h for h in st.get("hosts", []) if h.get("host_id") == HOST), None)
        grace = st.get("grace_until")
        return bool(h and h.get("state") == "QUIET" and h.get("capacity_units", 0) > 100
                    and (grace is None or grace <= now) and not st["leases"]["active"])

    wait_for(f"{HOST} QUIET with capacity", ready, 30.0, 0.2)
    return HOST

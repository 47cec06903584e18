"""Durable delivery of reports (PROTOCOL.md §2).

1. With an agent spool directory configured (or found at the documented
   default), the report is written there atomically (temporary hidden name,
   fsync, rename, fsync of the directory) and the agent publishes it.
2. Otherwise it is first written to this client's own outbox, then
   published to JetStream with ``Nats-Msg-Id`` = the record id; the file is
   deleted once JetStream acknowledged it.
3. When NATS cannot be reached within the submission bound, the report stays
   in the outbox and a background task publishes it once NATS is back (and a
   later process using the same outbox does too).

A resend carries the same ``Nats-Msg-Id``, so JetStream drops it, and the
coordinator upserts by id: a report is never counted twice.

The subject names the publishing host, ``<prefix>.report.<kind>.<host>.<key>``:
a worker report's own ``host_id`` when it has one, else this host
(:func:`default_host_id`). The coordinator refuses a worker report whose
``host_id`` differs from its subject's, and the NATS permissions generated
by ``deploy/nats/gen-auth.sh`` let a host's user publish only under its own
id (docs/deploy-nats.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from .._core import Core, NotConnected
from .._validate import MAX_ID_LEN, payload
from ..errors import DeliveryError

log = logging.getLogger("lull")

__all__ = ["Delivery", "PreparedReport", "Outbox", "default_host_id", "kind_of", "prepare"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_NON_TOKEN = re.compile(r"[^A-Za-z0-9_:@-]")


def default_host_id() -> str:
    """``LULL_HOST_ID``, else the host name with non-token characters as
    ``_`` (the agent's default)."""
    given = os.environ.get("LULL_HOST_ID") or socket.gethostname() or "unknown"
    return _NON_TOKEN.sub("_", given)[:MAX_ID_LEN]


@dataclass(frozen=True)
class PreparedReport:
    """A validated report: its kind (``worker``, ``build``, ``fatigue``), id,
    subject key (worker name or region), exact JSON bytes, and the host it
    names itself (a worker report's ``host_id``), if any."""

    kind: str
    id: str
    key: str
    payload: bytes
    host: Optional[str] = None

    def subject(self, cfg: Any) -> str:
        """The subject it is published on from this host:
        ``<prefix>.report.<kind>.<host>.<key>``."""
        return str(cfg.report_subject(self.kind, self.key, self.host or default_host_id()))

    def file_name(self) -> str:
        """A stable file name for this record (the same id, the same name)."""
        safe = _UNSAFE.sub("_", self.id)[:64]
        digest = hashlib.sha1(self.id.encode()).hexdigest()[:12]
        return f"{self.kind}-{safe}-{digest}.json"


@dataclass(frozen=True)
class Delivery:
    """Where a report went.

    ``via`` is ``spool`` (handed to the agent), ``jetstream`` (acknowledged by
    the stream; ``duplicate`` when the id was already stored) or ``outbox``
    (NATS was not reachable in time: kept on disk and sent later).
    """

    via: str
    id: str
    kind: str
    path: Optional[Path] = None
    stream: Optional[str] = None
    sequence: Optional[int] = None
    duplicate: bool = False

    @property
    def pending(self) -> bool:
        """The report is on disk, not yet acknowledged by JetStream."""
        return self.via == "outbox"


def kind_of(body: Dict[str, Any]) -> Optional[PreparedReport]:
    """Routes a decoded report as the agent does: ``execution_id`` makes a
    worker report, ``build_id`` a build, ``event_id`` a fatigue event."""
    for kind, id_field, key_field in (
        ("worker", "execution_id", "worker_name"),
        ("build", "build_id", "region"),
        ("fatigue", "event_id", "region"),
    ):
        rid, key = body.get(id_field), body.get(key_field)
        if isinstance(rid, str) and rid and isinstance(key, str) and key:
            data = json.dumps(body, separators=(",", ":")).encode()
            return PreparedReport(kind=kind, id=rid, key=key, payload=data, host=_host_of(kind, body))
    return None


def write_atomically(directory: Path, name: str, data: bytes) -> Path:
    """Writes ``data`` to ``directory/name`` through a hidden temporary file,
    fsyncs it, renames it into place and fsyncs the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    final = directory / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:  # some file systems refuse fsync on a directory
        log.debug("fsync of %s: %s", directory, e)
    return final


class Outbox:
    """This client's own directory of reports not yet acknowledged, and the
    background task that sends them."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.dir = core.cfg.outbox_dir
        self._task: Optional["asyncio.Task[None]"] = None

    def pending(self) -> List[Path]:
        """Reports waiting in the outbox, oldest first."""
        try:
            files = [p for p in self.dir.iterdir() if p.suffix == ".json" and not p.name.startswith(".")]
        except OSError:
            return []
        return sorted(files, key=lambda p: (p.stat().st_mtime if p.exists() else 0.0, p.name))

    async def deliver(self, r: PreparedReport, bound: float) -> Delivery:
        """Delivers ``r`` within ``bound`` seconds (see the module doc)."""
        start = time.monotonic()
        spool = self.core.cfg.spool_dir
        if spool is not None:
            try:
                path = write_atomically(spool, r.file_name(), r.payload)
                return Delivery(via="spool", id=r.id, kind=r.kind, path=path)
            except OSError as e:
                log.warning("cannot write to the spool %s (%s); publishing directly", spool, e)
        saved: Optional[Path]
        try:
            saved = write_atomically(self.dir, r.file_name(), r.payload)
        except OSError as e:
            log.warning("cannot write to the outbox %s (%s); publishing without a copy", self.dir, e)
            saved = None
        remaining = bound - (time.monotonic() - start)
        try:
            if remaining <= 0:
                raise NotConnected("no time left to publish")
            ack = await self.core.publish(
                r.subject(self.core.cfg), r.id, r.payload, remaining
            )
        except NotConnected as e:
            if saved is None:
                raise DeliveryError(
                    f"report {r.id} could not be published ({e}) nor saved in {self.dir}"
                ) from e
            log.info("report %s kept in the outbox until NATS answers: %s", r.id, e)
            self.kick()
            return Delivery(via="outbox", id=r.id, kind=r.kind, path=saved)
        if saved is not None:
            _unlink(saved)
        return Delivery(
            via="jetstream", id=r.id, kind=r.kind, stream=ack.stream,
            sequence=ack.sequence, duplicate=ack.duplicate,
        )

    def kick(self) -> None:
        """Starts the background flush if it is not running (call on the loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        cfg = self.core.cfg
        while True:
            files = self.pending()
            if not files:
                return
            sent_all = await self.flush_once(files, cfg.submit_timeout)
            if not sent_all:
                await asyncio.sleep(cfg.outbox_retry_sec)

    async def flush_once(self, files: List[Path], attempt_timeout: float) -> bool:
        """Publishes each file once; True when all were acknowledged."""
        for path in files:
            try:
                body = json.loads(path.read_bytes())
            except FileNotFoundError:
                continue  # sent by another flusher meanwhile
            except (OSError, ValueError) as e:
                _quarantine(path, f"unreadable: {e}")
                continue
            r = kind_of(body) if isinstance(body, dict) else None
            if r is None:
                _quarantine(path, "not a worker, build or fatigue report")
                continue
            try:
                await self.core.publish(
                    r.subject(self.core.cfg), r.id,
                    path.read_bytes(), attempt_timeout,
                )
            except FileNotFoundError:
                continue
            except NotConnected as e:
                log.debug("outbox: %s still waiting: %s", path.name, e)
                return False
            _unlink(path)
            log.info("outbox: report %s delivered", r.id)
        return True

    async def drain(self, timeout: float) -> int:
        """Tries to send everything in the outbox within ``timeout``; returns
        how many reports are left."""
        deadline = time.monotonic() + timeout
        while True:
            files = self.pending()
            left = deadline - time.monotonic()
            if not files or left <= 0:
                return len(files)
            if not await self.flush_once(files, max(0.05, left)):
                await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("cannot delete %s after delivery: %s", path, e)


def _quarantine(path: Path, why: str) -> None:
    failed = path.parent / "failed"
    try:
        failed.mkdir(exist_ok=True)
        os.replace(path, failed / path.name)
        (failed / (path.name + ".error")).write_text(f"{time.time():.3f} {why}\n")
        log.warning("outbox: %s moved to failed/: %s", path.name, why)
    except OSError as e:
        log.warning("outbox: cannot quarantine %s: %s", path, e)


def _host_of(kind: str, body: Dict[str, Any]) -> Optional[str]:
    host = body.get("host_id") if kind == "worker" else None
    return host if isinstance(host, str) and host else None


def prepare(kind: str, rid: str, key: str, body: Dict[str, Any]) -> PreparedReport:
    """A :class:`PreparedReport` from a validated body."""
    return PreparedReport(kind=kind, id=rid, key=key, payload=payload(body), host=_host_of(kind, body))


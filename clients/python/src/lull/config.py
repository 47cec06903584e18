"""Client configuration: where NATS is, the subject prefix, the spool and
outbox directories, and the time bounds of each kind of call.

:meth:`Config.from_env` reads the same ``LULL_*`` environment variables as
every Lull binary (README "Configuration").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import List, Optional

__all__ = ["Config", "DEFAULT_SPOOL_DIR", "DEFAULT_NATS_URL", "split_servers"]

#: The agent's documented default spool directory (docs/agent.md).
DEFAULT_SPOOL_DIR = Path("/var/spool/lull")

#: The default NATS URL of every Lull component.
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def split_servers(urls: str) -> List[str]:
    """Splits a comma-separated server list, dropping blanks."""
    return [u.strip() for u in urls.split(",") if u.strip()]


def _default_outbox() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "lull" / "outbox"


def _usable_dir(p: Path) -> bool:
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


@dataclass(frozen=True)
class Config:
    """Everything a :class:`lull.Client` needs. Every field has a default.

    Times are seconds.
    """

    #: NATS server URLs; the client fails over between them.
    servers: List[str] = field(default_factory=lambda: [DEFAULT_NATS_URL])
    #: Prefix of every subject (``LULL_SUBJECT_PREFIX``).
    prefix: str = "lull"
    #: NATS credentials file (JWT + nkey).
    creds: Optional[str] = None
    #: NATS user name.
    user: Optional[str] = None
    #: NATS password.
    password: Optional[str] = None
    #: NATS token.
    token: Optional[str] = None
    #: CA certificate (PEM) for TLS; turns TLS on.
    ca: Optional[str] = None
    #: The agent's spool directory. When set, reports are written there and
    #: the agent publishes them. ``None``: publish directly.
    spool_dir: Optional[Path] = None
    #: This client's own outbox: a report is written here before it is
    #: published and deleted after JetStream acknowledged it. Reports left
    #: here (NATS down, a crash) are sent again later.
    outbox_dir: Path = field(default_factory=_default_outbox)
    #: The longest a report submission blocks the caller.
    submit_timeout: float = 5.0
    #: How often the outbox is retried while it holds reports.
    outbox_retry_sec: float = 1.0
    #: Deadline of one request-reply call, retries included.
    request_timeout: float = 5.0
    #: Longest wait for one reply within a call; a call retries after it.
    attempt_timeout: float = 2.0
    #: How long a first connection attempt may take.
    connect_timeout: float = 2.0
    #: Heartbeat interval when a grant carries no limits.
    default_heartbeat_interval_sec: float = 10.0
    #: Floor of the heartbeat interval.
    min_heartbeat_interval_sec: float = 0.1
    #: Retry delay after a heartbeat that got no answer.
    heartbeat_retry_sec: float = 1.0
    #: How often a queued lease request checks its ticket.
    queue_probe_sec: float = 5.0
    #: Name of the NATS connection.
    name: str = "lull-python"

    @classmethod
    def from_env(cls, **overrides: object) -> "Config":
        """A configuration from ``LULL_*`` environment variables.

        ``LULL_NATS_URL`` (comma-separated list), ``LULL_NATS_CREDS``,
        ``LULL_NATS_USER`` / ``LULL_NATS_PASSWORD``, ``LULL_NATS_TOKEN``,
        ``LULL_NATS_CA``, ``LULL_SUBJECT_PREFIX``, ``LULL_SPOOL_DIR`` (an
        empty value turns the spool off; unset, the agent's default
        ``/var/spool/lull`` is used when it exists and is writable) and
        ``LULL_OUTBOX_DIR``. Keyword arguments override the result.
        """
        env = os.environ
        spool: Optional[Path]
        if "LULL_SPOOL_DIR" in env:
            spool = Path(env["LULL_SPOOL_DIR"]) if env["LULL_SPOOL_DIR"] else None
        else:
            spool = DEFAULT_SPOOL_DIR if _usable_dir(DEFAULT_SPOOL_DIR) else None
        cfg = cls(
            servers=split_servers(env.get("LULL_NATS_URL", DEFAULT_NATS_URL))
            or [DEFAULT_NATS_URL],
            prefix=env.get("LULL_SUBJECT_PREFIX", "lull") or "lull",
            creds=env.get("LULL_NATS_CREDS") or None,
            user=env.get("LULL_NATS_USER") or None,
            password=env.get("LULL_NATS_PASSWORD") or None,
            token=env.get("LULL_NATS_TOKEN") or None,
            ca=env.get("LULL_NATS_CA") or None,
            spool_dir=spool,
            outbox_dir=Path(env["LULL_OUTBOX_DIR"])
            if env.get("LULL_OUTBOX_DIR")
            else _default_outbox(),
        )
        return replace(cfg, **overrides)  # type: ignore[arg-type]

    def endpoint(self, name: str) -> str:
        """The subject of a request-reply endpoint: ``<prefix>.v1.<name>``."""
        return f"{self.prefix}.v1.{name}"

    def lease_events(self, lease_id: str) -> str:
        """``<prefix>.lease.events.<lease_id>``."""
        return f"{self.prefix}.lease.events.{lease_id}"

    def report_subject(self, kind: str, key: str, host: Optional[str] = None) -> str:
        """``<prefix>.report.<kind>.<host>.<key>``: the subject naming the
        publishing host. Without ``host``, the legacy
        ``<prefix>.report.<kind>.<key>`` (still accepted by the coordinator
        during the deprecation period, refused to agents by the generated
        NATS permissions)."""
        if host is None:
            return f"{self.prefix}.report.{kind}.{key}"
        return f"{self.prefix}.report.{kind}.{host}.{key}"

    def lease_request(self, addon_id: str) -> str:
        """``<prefix>.v1.lease.request.<addon_id>``: a lease request naming
        its addon (the generated NATS permissions let an addon publish only
        under its own id)."""
        return self.endpoint(f"lease.request.{addon_id}")

    def __repr__(self) -> str:
        secret = "<redacted>"
        return (
            f"Config(servers={self.servers!r}, prefix={self.prefix!r}, "
            f"spool_dir={self.spool_dir!r}, outbox_dir={self.outbox_dir!r}, "
            f"user={self.user!r}, password={secret if self.password else None}, "
            f"token={secret if self.token else None})"
        )

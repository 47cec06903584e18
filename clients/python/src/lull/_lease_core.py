"""The asyncio side of leases, run on the client's background loop:
acquiring (once, or waiting in the coordinator's queue), and keeping a held
lease alive (heartbeats, the events subject, the replacement token).

It follows the Rust SDK (``client/src/lease``): the heartbeat interval is
the grant's, capped at half the TTL; a heartbeat that gets no answer is
retried sooner and never ends the lease; ``ok: false``, ``not_found`` or
``forbidden`` end it, and so does a ``REVOKED`` or ``EXPIRED`` event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from . import _validate as v
from ._core import Core
from .errors import (
    Forbidden,
    InvalidRequest,
    LeaseDenied,
    LeaseTimeout,
    LeaseWithdrawn,
    NotFound,
    ServiceError,
    Unavailable,
    ValidationError,
)

log = logging.getLogger("lull")

PRIORITIES = ("LOW", "NORMAL", "HIGH")
COST_CLASSES = ("LOW", "NORMAL", "HIGH")


@dataclass(frozen=True)
class LeaseRequest:
    """A ``lease.request`` body (PROTOCOL.md §3)."""

    addon_id: str
    job_type: str
    cost_units: Optional[int] = None
    cost_class: Optional[str] = None
    host_id: Optional[str] = None
    priority: str = "NORMAL"
    expected_duration_sec: Optional[float] = None
    cpu_heavy: bool = False
    disk_write_heavy: bool = False
    network_heavy: bool = False

    def to_dict(self) -> Dict[str, Any]:
        """The validated body. Raises :class:`~lull.errors.ValidationError`."""
        v.subject_token("addon_id", self.addon_id)
        v.ident("job_type", self.job_type)
        if self.host_id is not None:
            v.subject_token("host_id", self.host_id)
        priority = str(self.priority).upper()
        if priority not in PRIORITIES:
            raise ValidationError("priority", "must be LOW, NORMAL or HIGH", self.priority)
        body: Dict[str, Any] = {
            "addon_id": self.addon_id,
            "job_type": self.job_type,
            "priority": priority,
            "constraints": {
                "cpu_heavy": bool(self.cpu_heavy),
                "disk_write_heavy": bool(self.disk_write_heavy),
                "network_heavy": bool(self.network_heavy),
            },
        }
        if self.cost_units is not None:
            body["cost_units"] = v.int_range("cost_units", self.cost_units, 1, 100)
        elif self.cost_class is not None:
            cls = str(self.cost_class).upper()
            if cls not in COST_CLASSES:
                raise ValidationError("cost_class", "must be LOW, NORMAL or HIGH", self.cost_class)
            body["cost_class"] = cls
        else:
            raise ValidationError("cost_units", "is required (1..100, or give cost_class)")
        if self.host_id is not None:
            body["host_id"] = self.host_id
        if self.expected_duration_sec is not None:
            body["expected_duration_sec"] = v.in_range(
                "expected_duration_sec", self.expected_duration_sec, 0.0, 30 * 86400.0
            )
        return body


@dataclass(frozen=True)
class LeaseEnd:
    """How a held lease ended without its holder releasing it: ``state`` is
    ``REVOKED``, ``EXPIRED``, ``RELEASED`` (by someone else) or ``LOST``."""

    state: str
    reason: Optional[str] = None


def heartbeat_interval(limits: Optional[Dict[str, Any]], core: Core) -> float:
    """The grant's interval, capped at half the TTL, floored at the minimum."""
    cfg = core.cfg
    interval = cfg.default_heartbeat_interval_sec
    if limits:
        given = limits.get("heartbeat_interval_sec")
        if isinstance(given, (int, float)) and given > 0:
            interval = float(given)
        ttl = limits.get("heartbeat_ttl_sec")
        if isinstance(ttl, (int, float)) and ttl > 0:
            interval = min(interval, float(ttl) / 2)
    return max(interval, cfg.min_heartbeat_interval_sec)


@dataclass
class Held:
    """A held lease, kept alive on the background loop."""

    core: Core
    lease_id: str
    token: str
    host_id: str
    limits: Optional[Dict[str, Any]]
    expires_at: Optional[float]
    end: Optional[LeaseEnd] = None
    listeners: List[Callable[[LeaseEnd], None]] = field(default_factory=list)
    _sub: Any = None
    _task: Optional["asyncio.Task[None]"] = None
    _stopped: bool = False

    def finish(self, end: LeaseEnd) -> None:
        """Records the end (once) and tells the listeners."""
        if self.end is not None or self._stopped:
            return
        self.end = end
        log.info("lease %s ended: %s (%s)", self.lease_id, end.state, end.reason)
        for cb in list(self.listeners):
            try:
                cb(end)
            except Exception:  # a listener's bug must not kill the keepalive
                log.exception("lease end listener failed")

    async def start(self, beat_now: bool) -> None:
        """Subscribes to the lease's events and starts the heartbeats."""
        try:
            self._sub = await self.core.subscribe(
                self.core.cfg.lease_events(self.lease_id), self._on_event
            )
        except Exception as e:  # noqa: BLE001 - heartbeats still end the lease
            log.warning("lease %s: no events subscription (%s); relying on heartbeats", self.lease_id, e)
        self._task = asyncio.get_running_loop().create_task(self._keepalive(beat_now))

    async def _on_event(self, msg: Any) -> None:
        try:
            ev = json.loads(msg.data)
        except ValueError:
            return
        if not isinstance(ev, dict) or ev.get("lease_id") != self.lease_id:
            return
        kind = ev.get("event")
        if kind in ("REVOKED", "EXPIRED", "RELEASED"):
            self.finish(LeaseEnd(str(kind), ev.get("reason")))

    def handle(self) -> Dict[str, Any]:
        """``{lease_id, token}`` with the current token."""
        return {"lease_id": self.lease_id, "token": self.token}

    async def _keepalive(self, beat_now: bool) -> None:
        interval = heartbeat_interval(self.limits, self.core)
        delay = 0.0 if beat_now else interval
        while self.end is None and not self._stopped:
            await asyncio.sleep(delay)
            if self.end is not None or self._stopped:
                return
            delay = await self.beat(interval)

    async def beat(self, interval: float) -> float:
        """One heartbeat; returns the delay to the next one."""
        cfg = self.core.cfg
        retry = max(min(interval, cfg.heartbeat_retry_sec), cfg.min_heartbeat_interval_sec)
        try:
            r = await self.core.request(
                "lease.heartbeat", self.handle(), timeout=min(cfg.request_timeout, max(interval, 0.5))
            )
        except (NotFound, Forbidden) as e:
            self.finish(LeaseEnd("LOST", e.message))
            return interval
        except (ServiceError, Unavailable) as e:
            log.warning("lease %s: heartbeat failed (%s); retrying", self.lease_id, e)
            return retry
        if not isinstance(r, dict):
            return retry
        if r.get("ok"):
            new = r.get("token")
            if isinstance(new, str) and new:
                self.token = new  # a replacement (queued grant, rotated key)
            if isinstance(r.get("expires_at"), (int, float)):
                self.expires_at = float(r["expires_at"])
            return interval
        state = str(r.get("state") or "LOST")
        self.finish(LeaseEnd("LOST" if state == "ACTIVE" else state, r.get("reason")))
        return interval

    async def stop(self) -> None:
        """Stops the heartbeats and the events subscription."""
        self._stopped = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as e:  # noqa: BLE001 - the connection may be gone
                log.debug("unsubscribe: %s", e)
            self._sub = None

    async def progress(self, pct: Optional[float], note: Optional[str], metrics: Optional[Dict[str, Any]]) -> bool:
        """``lease.report``; returns the reply's ``ok``."""
        body: Dict[str, Any] = self.handle()
        if pct is not None:
            body["progress_pct"] = v.in_range("progress_pct", pct, 0.0, 100.0)
        if note is not None:
            body["message"] = v.text("message", note, v.MAX_TEXT_LEN)
        if metrics is not None:
            v.max_items("metrics", metrics, 64)
            body["metrics"] = dict(metrics)
        r = await self.core.request("lease.report", body)
        return bool(isinstance(r, dict) and r.get("ok"))

    async def release(self, outcome: str) -> bool:
        """Stops the keepalive and releases with ``outcome``; False when the
        lease had already ended."""
        v.text("outcome", outcome, v.MAX_ID_LEN)
        await self.stop()
        r = await self.core.request("lease.release", {**self.handle(), "outcome": outcome})
        return bool(isinstance(r, dict) and r.get("ok"))


def _denial(resp: Dict[str, Any]) -> LeaseDenied:
    return LeaseDenied(resp.get("reason_code"), resp.get("reason"), resp.get("retry_after_sec"))


def _retry_delay(retry_after: Optional[float], remaining: float) -> float:
    base = retry_after if isinstance(retry_after, (int, float)) and retry_after > 0 else 5.0
    base = min(max(base, 0.5), 300.0)
    return max(0.0, min(base * (1.0 + 0.2 * random.random()), remaining))


async def acquire(core: Core, req: LeaseRequest, wait: bool, wait_timeout: float) -> Held:
    """Asks for a lease. ``wait=False``: once (a denial raises
    :class:`LeaseDenied`). ``wait=True``: in the coordinator's queue until
    ``wait_timeout`` (then :class:`LeaseTimeout`); denials that are not
    queued are retried after ``retry_after_sec``."""
    body = req.to_dict()
    # lease.request.<addon_id>: the subject names the addon, so that the
    # NATS permissions can bind the addon_id to the user (docs/deploy-nats.md).
    endpoint = f"lease.request.{req.addon_id}"
    if not wait:
        resp = await core.request(endpoint, {**body, "wait": False})
        if resp.get("approved"):
            return await _held(core, resp, beat_now=False)
        raise _denial(resp)
    deadline = time.monotonic() + wait_timeout
    last: Optional[LeaseDenied] = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if last is None:
                raise Unavailable("no coordinator answered before the wait's deadline")
            raise LeaseTimeout(last.reason_code, last.reason, last.retry_after_sec)
        try:
            resp = await core.request(
                endpoint,
                {**body, "wait": True, "wait_timeout_sec": min(remaining, 86400.0)},
                timeout=min(core.cfg.request_timeout, remaining),
            )
        except Unavailable:
            if last is None and time.monotonic() + 0.5 >= deadline:
                raise
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            continue
        if resp.get("approved"):
            return await _held(core, resp, beat_now=False)
        last = _denial(resp)
        if resp.get("queued"):
            held = await _wait_in_queue(core, resp, deadline)
            if held is not None:
                return held
            continue
        await asyncio.sleep(_retry_delay(last.retry_after_sec, deadline - time.monotonic()))


async def _held(core: Core, grant: Dict[str, Any], beat_now: bool) -> Held:
    lease_id, token = grant.get("lease_id"), grant.get("token")
    if not isinstance(lease_id, str) or not isinstance(token, str):
        raise ServiceError("internal", "approved reply without lease_id or token")
    h = Held(
        core=core,
        lease_id=lease_id,
        token=token,
        host_id=str(grant.get("host_id") or ""),
        limits=grant.get("limits"),
        expires_at=grant.get("expires_at"),
    )
    await h.start(beat_now)
    return h


async def _wait_in_queue(core: Core, queued: Dict[str, Any], deadline: float) -> Optional[Held]:
    """Waits for a queued request's grant (the ``GRANTED`` event or a probe of
    the ticket). Returns None when the coordinator gave the request up (ask
    again); raises on the deadline (after withdrawing it) or a withdrawal."""
    lease_id, ticket = queued.get("lease_id"), queued.get("token")
    if not isinstance(lease_id, str) or not isinstance(ticket, str):
        raise ServiceError("internal", "queued reply without lease_id or token")
    events: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()

    async def on_event(msg: Any) -> None:
        try:
            ev = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(ev, dict) and ev.get("lease_id") == lease_id:
            events.put_nowait(ev)

    sub = await core.subscribe(core.cfg.lease_events(lease_id), on_event)
    handle = {"lease_id": lease_id, "token": ticket}
    probe_at = time.monotonic()  # at once: the grant may predate the subscription
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                await _cancel(core, handle)
                raise LeaseTimeout(
                    queued.get("reason_code"), queued.get("reason"), queued.get("retry_after_sec")
                )
            try:
                ev = await asyncio.wait_for(events.get(), max(0.0, min(probe_at, deadline) - now))
            except asyncio.TimeoutError:
                ev = None
            if ev is not None:
                kind = ev.get("event")
                if kind == "GRANTED":
                    grant = {
                        "lease_id": lease_id, "token": ticket,
                        "host_id": ev.get("host_id") or queued.get("host_id"),
                        "expires_at": ev.get("expires_at"),
                        "limits": ev.get("limits") or queued.get("limits"),
                    }
                    return await _held(core, grant, beat_now=True)
                if kind in ("REVOKED", "RELEASED"):
                    raise LeaseWithdrawn(f"queued request {lease_id} withdrawn: {ev.get('reason')}")
                if kind == "EXPIRED":
                    return None
                continue
            if time.monotonic() < probe_at:
                continue
            probe_at = time.monotonic() + core.cfg.queue_probe_sec
            try:
                r = await core.request("lease.heartbeat", handle, timeout=min(core.cfg.request_timeout, 2.0))
            except InvalidRequest:
                continue  # still queued
            except (NotFound, Forbidden) as e:
                raise LeaseWithdrawn(f"queued request {lease_id} withdrawn: {e.message}") from e
            except (ServiceError, Unavailable):
                continue
            if r.get("ok"):
                grant = {
                    "lease_id": lease_id, "token": r.get("token") or ticket,
                    "host_id": queued.get("host_id") or await _host_of(core, lease_id),
                    "expires_at": r.get("expires_at"), "limits": queued.get("limits"),
                }
                return await _held(core, grant, beat_now=False)
            if r.get("state") == "REVOKED":
                raise LeaseWithdrawn(f"queued request {lease_id} withdrawn: {r.get('reason')}")
            return None
    finally:
        try:
            await sub.unsubscribe()
        except Exception as e:  # noqa: BLE001 - the connection may be gone
            log.debug("unsubscribe: %s", e)


async def _host_of(core: Core, lease_id: str) -> str:
    try:
        st = await core.request("scheduler.status", {})
    except (ServiceError, Unavailable):
        return ""
    for lease in (st.get("leases") or {}).get("active") or []:
        if lease.get("lease_id") == lease_id:
            return str(lease.get("host_id") or "")
    return ""


async def _cancel(core: Core, handle: Dict[str, Any]) -> None:
    try:
        await core.request("lease.cancel", handle, timeout=2.0)
    except (ServiceError, Unavailable) as e:
        log.warning("could not cancel queued lease request %s: %s", handle["lease_id"], e)

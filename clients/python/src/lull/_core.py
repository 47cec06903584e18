"""The engine room: one background thread running an asyncio loop that owns
the NATS connection. Synchronous calls submit coroutines to it and wait a
bounded time; asynchronous calls await them from the caller's loop.

Request-reply calls retry what may be transient (``no responders``, a
timeout, a lost connection, an ``unavailable`` reply) within their deadline,
so a coordinator failover or a change of NATS server is invisible to the
caller unless it outlasts the deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Coroutine, Dict, Optional, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from .config import Config
from .errors import LullError, Unavailable, service_error

log = logging.getLogger("lull")

T = TypeVar("T")

#: Exceptions of nats-py that mean "try again": nobody answered (yet), the
#: connection is gone or being re-established.
TRANSIENT: tuple[type[BaseException], ...] = (
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    asyncio.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    OSError,
)


class NotConnected(LullError):
    """NATS is not reachable right now (internal; surfaces as Unavailable)."""


@dataclass(frozen=True)
class PubAck:
    """JetStream's acknowledgement of a published report."""

    stream: str
    sequence: int
    duplicate: bool


class Core:
    """A background event loop with a lazily opened NATS connection."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        self._nc: Optional[NatsClient] = None
        self._lock: Optional[asyncio.Lock] = None
        self._closed = False
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="lull-client", daemon=True
        )
        self._thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    # ----- running coroutines -------------------------------------------

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on the background loop's thread."""
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
        """Schedules ``coro`` on the background loop."""
        if self._closed:
            coro.close()
            raise LullError("the client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: Optional[float]) -> T:
        """Runs ``coro`` on the background loop and waits at most ``timeout``
        seconds for it (``None``: no bound). On timeout the coroutine is
        cancelled and :class:`Unavailable` raised."""
        if self.in_loop_thread():
            coro.close()
            raise LullError(
                "a synchronous lull call was made from the client's own thread "
                "(a callback); use the asyncio API there"
            )
        fut = self.submit(coro)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError as e:
            fut.cancel()
            raise Unavailable(f"no result within {timeout:.1f}s") from e

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Awaits ``coro`` run on the background loop from another loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Starts a fire-and-forget task on the background loop."""

        async def wrapper() -> None:
            await coro

        self.submit(wrapper())

    # ----- the connection -----------------------------------------------

    async def connection(self, timeout: float) -> NatsClient:
        """The NATS connection, opened on first use (bounded by ``timeout``).
        Raises :class:`NotConnected` while it is down or reconnecting."""
        nc = self._nc
        if nc is not None and not nc.is_closed:
            if nc.is_connected:
                return nc
            raise NotConnected("NATS connection is re-establishing")
        if self._lock is None:
            self._lock = asyncio.Lock()
        try:
            await asyncio.wait_for(self._lock.acquire(), max(0.01, timeout))
        except asyncio.TimeoutError:
            raise NotConnected("still connecting to NATS") from None
        try:
            nc = self._nc
            if nc is not None and not nc.is_closed:
                if nc.is_connected:
                    return nc
                raise NotConnected("NATS connection is re-establishing")
            nc = await self._open(max(0.05, min(timeout, self.cfg.connect_timeout)))
            self._nc = nc
            return nc
        finally:
            self._lock.release()

    async def _open(self, timeout: float) -> NatsClient:
        cfg = self.cfg

        async def on_error(e: Exception) -> None:
            log.debug("nats: %s", e)

        async def on_disconnect() -> None:
            log.debug("nats: disconnected")

        async def on_reconnect() -> None:
            log.debug("nats: reconnected")

        opts: Dict[str, Any] = dict(
            servers=list(cfg.servers),
            name=cfg.name,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            connect_timeout=max(1, int(round(timeout))),
            ping_interval=10,
            max_outstanding_pings=2,
        )
        if cfg.creds:
            opts["user_credentials"] = cfg.creds
        if cfg.user:
            opts["user"] = cfg.user
            opts["password"] = cfg.password or ""
        if cfg.token:
            opts["token"] = cfg.token
        if cfg.ca:
            opts["tls"] = ssl.create_default_context(cafile=cfg.ca)
        nc = NatsClient()
        try:
            await asyncio.wait_for(nc.connect(**opts), timeout)
        except (nats.errors.Error, asyncio.TimeoutError, OSError) as e:
            await self._discard(nc)
            raise NotConnected(f"cannot connect to NATS at {', '.join(cfg.servers)}: {e!r}") from e
        return nc

    @staticmethod
    async def _discard(nc: NatsClient) -> None:
        try:
            await nc.close()
        except (nats.errors.Error, OSError, asyncio.TimeoutError, AttributeError) as e:
            log.debug("closing a failed connection: %r", e)

    async def aclose(self) -> None:
        """Stops the background tasks, then drains and closes the connection."""
        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me]
        for t in others:
            t.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.drain(), 2.0)
            except (nats.errors.Error, asyncio.TimeoutError, OSError):
                await self._discard(nc)

    def close(self, timeout: float = 3.0) -> None:
        """Closes the connection and stops the background loop."""
        if self._closed:
            return
        if not self.in_loop_thread():
            try:
                self.run(self.aclose(), timeout)
            except LullError as e:
                log.debug("close: %s", e)
        self._closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)

    # ----- request-reply --------------------------------------------------

    async def request(self, endpoint: str, body: Any, timeout: Optional[float] = None) -> Any:
        """Calls ``<prefix>.v1.<endpoint>`` with ``body`` (JSON) and returns
        the decoded reply. Transient failures are retried until the deadline
        (``timeout``, default ``request_timeout``), then :class:`Unavailable`
        is raised. An error reply raises its :class:`ServiceError` subclass
        (``unavailable`` is retried)."""
        subject = self.cfg.endpoint(endpoint)
        data = json.dumps(body, separators=(",", ":")).encode()
        deadline = time.monotonic() + (self.cfg.request_timeout if timeout is None else timeout)
        delay = 0.05
        last = "not attempted"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unavailable(f"{subject}: {last}")
            try:
                nc = await self.connection(remaining)
                msg = await nc.request(
                    subject, data, timeout=max(0.01, min(remaining, self.cfg.attempt_timeout))
                )
                return decode_reply(msg)
            except NotConnected as e:
                last = str(e)
            except nats.errors.NoRespondersError:
                last = "no responders (no coordinator serves it right now)"
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                last = "no reply in time"
            except _Retry as e:
                last = str(e)
            except TRANSIENT as e:
                last = repr(e)
            await asyncio.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, 0.25)

    # ----- JetStream --------------------------------------------------------

    async def publish(self, subject: str, msg_id: str, payload: bytes, timeout: float) -> PubAck:
        """Publishes to JetStream with ``Nats-Msg-Id`` and waits at most
        ``timeout`` for the acknowledgement. Raises :class:`NotConnected`
        when it cannot be done now."""
        deadline = time.monotonic() + timeout
        nc = await self.connection(timeout)
        js = nc.jetstream()
        remaining = max(0.01, deadline - time.monotonic())
        try:
            ack = await js.publish(
                subject, payload, timeout=remaining, headers={"Nats-Msg-Id": msg_id}
            )
        except TRANSIENT as e:
            raise NotConnected(f"publishing {subject}: {e!r}") from e
        except nats.js.errors.APIError as e:
            raise NotConnected(f"publishing {subject}: JetStream refused: {e}") from e
        return PubAck(stream=ack.stream, sequence=ack.seq, duplicate=bool(ack.duplicate))

    async def subscribe(self, subject: str, cb: Any) -> Any:
        """Subscribes ``cb`` (an async callback taking a message) to ``subject``."""
        nc = await self.connection(self.cfg.request_timeout)
        return await nc.subscribe(subject, cb=cb)


class _Retry(LullError):
    """An ``unavailable`` error reply: retried like a transport failure."""


def decode_reply(msg: Msg) -> Any:
    """The JSON body of a reply; an error reply (micro error headers or an
    ``{"error": ...}`` body) raises its :class:`ServiceError`."""
    headers = msg.headers or {}
    try:
        body = json.loads(msg.data) if msg.data else None
    except ValueError:
        body = None
    if "Nats-Service-Error" in headers or (
        isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], dict)
    ):
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code", "internal"))
            message = str(err.get("message", ""))
        else:
            code = headers.get("Nats-Service-Error-Code", "internal")
            message = headers.get("Nats-Service-Error", "")
            code = {"400": "invalid_request", "404": "not_found", "403": "forbidden",
                    "503": "unavailable"}.get(code, code)
        if code == "unavailable":
            raise _Retry(f"unavailable: {message}")
        raise service_error(code, message)
    if body is None and msg.data:
        raise service_error("internal", f"undecodable reply: {msg.data[:200]!r}")
    return body

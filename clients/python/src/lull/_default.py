"""The process-wide default :class:`~lull.client.Client`, created on first
use from the environment and replaceable with :func:`configure`."""

from __future__ import annotations

import threading
from typing import Any, Optional

from .client import Client
from .config import Config

_lock = threading.Lock()
_client: Optional[Client] = None


def get_client() -> Client:
    """The default client (created from the environment on first use)."""
    global _client
    with _lock:
        if _client is None:
            _client = Client()
        return _client


def configure(config: Optional[Config] = None, **overrides: Any) -> Client:
    """Replaces the default client with one built from ``config`` and/or
    field overrides (``lull.configure(servers=["nats://a:4222"])``), closing
    the previous one. Returns the new client."""
    global _client
    new = Client(config, **overrides)
    with _lock:
        old, _client = _client, new
    if old is not None:
        old.close()
    return new

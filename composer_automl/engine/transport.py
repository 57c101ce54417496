"""The engine's network: the nameserver, addresses, the shared secret and plain data on the wire.

Pyro4 itself is configured once per process by :func:`composer_automl.adapters.pyro.configure`
(serpent only, NumPy-safe, HMAC with the secret). Binding to a non-loopback address without a
secret is refused (:class:`ConfigError`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from typing import Any

from composer_automl.adapters.pyro import start_nameserver
from composer_automl.config import ConfigError

SECRET_ENV = "COMPOSER_AUTOML_SECRET"
"""Environment variable read for the shared secret when the config gives none."""

def resolve_secret(secret: str | None) -> str | None:
    """The secret from the config, else from ``$COMPOSER_AUTOML_SECRET``, else None."""
    return secret or os.environ.get(SECRET_ENV) or None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.x, ::1, localhost)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, secret: str | None) -> None:
    """Refuse a non-loopback address without a shared secret (network mode needs one); the error's key is
    ``host``."""
    if not is_loopback(host) and not secret:
        raise ConfigError(f"={host!r} is reachable from the network: set a shared secret (the secret setting or "
                          f"${SECRET_ENV}) known to master and workers", key="host")


class NameServer:
    """A Pyro4 nameserver in a background thread, bound to ``host`` (port 0 = any free port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self._daemon: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> tuple[str, int]:
        """Start serving; returns the (host, port) clients connect to."""
        self._daemon, self.host, self.port = start_nameserver(self.host, self.port)
        self._thread = threading.Thread(target=self._daemon.requestLoop, name="pyro-nameserver", daemon=True)
        self._thread.start()
        return self.host, self.port

    def shutdown(self) -> None:
        """Stop serving (idempotent)."""
        if self._daemon is not None:
            self._daemon.shutdown()
            self._daemon = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def parse_address(text: str, field: str) -> tuple[str, int]:
    """``HOST:PORT`` (port 1–65535) → (host, port); a ConfigError naming ``field`` otherwise."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"={text!r} must be HOST:PORT with a port in 1-65535 (e.g. 10.0.0.5:9090)", key=field)
    return host.strip("[]"), int(port)


def reachable_address(host: str) -> str:
    """The address other machines reach a server bound to ``host`` at: this machine's outward address for a
    wildcard bind (``0.0.0.0``, ``::``), else ``host`` itself."""
    if host not in ("0.0.0.0", "::", ""):
        return host
    try:
        named = socket.gethostbyname(socket.gethostname())
        if not is_loopback(named):
            return named
        return local_address_towards("192.0.2.1")  # TEST-NET-1: picks the outward route, sends nothing
    except OSError:
        return socket.gethostname()


def local_address_towards(host: str) -> str:
    """This machine's address on the route to ``host`` (where a worker's daemon should listen)."""
    if is_loopback(host):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, 9))  # no packet is sent for UDP connect; this only picks the route
        return sock.getsockname()[0]

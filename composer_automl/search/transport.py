"""Pyro4 transport for hpbandster: safe serialisation, NumPy-2 fix, shared-secret auth.

Three problems of hpbandster 0.7.4 over Pyro4 4.82 are fixed here, once per process
by :func:`configure`:

1. **NumPy 2 hang.** serpent writes NumPy scalars with ``repr`` — under NumPy 2 that
   is ``np.float64(3.0)``, which the receiver cannot parse; the failing call is
   *oneway*, so the error is dropped and the search waits forever. We register serpent
   serializers that write NumPy scalars and arrays as Python literals (and the master
   also converts budgets and configs to Python scalars before sending them).
2. **Serializer.** Only ``serpent`` is sent and accepted — never pickle.
3. **Authentication.** With a shared secret every Pyro message carries an HMAC; a
   peer without the key is refused by the nameserver, the master and the workers.
   hpbandster creates its proxies and daemons itself, so the key is installed as
   the default of every :class:`Pyro4.Proxy`, :class:`Pyro4.Daemon` and
   ``Pyro4.locateNS``; proxies sent over the wire (the result callback) never carry
   the key — the receiver applies its own. Binding to a non-loopback address
   without a secret is refused (:class:`ConfigError`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
from typing import Any

import numpy as np
import Pyro4
import Pyro4.core
import Pyro4.naming
import serpent

from composer_automl.config import ConfigError

SECRET_ENV = "COMPOSER_AUTOML_SECRET"
"""Environment variable read for the shared secret when the config gives none."""

log = logging.getLogger(__name__)

_secret: bytes | None = None
_patched = False
_lock = threading.Lock()


def plain(value: Any) -> Any:
    """``value`` as plain Python data (NumPy scalars/arrays → Python numbers/lists), recursively."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _ser_numpy(obj: Any, serializer: serpent.Serializer, out: list, level: int) -> None:
    """serpent class serializer: write a NumPy scalar/array as the equivalent Python literal."""
    serializer._serialize(plain(obj), out, level)


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


def check_bind(host: str, secret: str | None, field: str = "search.host") -> None:
    """Refuse a non-loopback address without a shared secret (network mode needs one)."""
    if not is_loopback(host) and not secret:
        raise ConfigError(
            f"{field}={host!r} is reachable from the network: set a shared secret "
            f"(search.secret or ${SECRET_ENV}) known to master and workers"
        )


def configure(secret: str | None) -> None:
    """Configure Pyro4 for this process: serpent only, NumPy-safe, HMAC with ``secret`` (None = off)."""
    global _secret, _patched
    with _lock:
        Pyro4.config.SERIALIZER = "serpent"
        Pyro4.config.SERIALIZERS_ACCEPTED = {"serpent"}
        serpent.register_class(np.generic, _ser_numpy)
        serpent.register_class(np.ndarray, _ser_numpy)
        _secret = secret.encode("utf-8") if secret else None
        if not _patched:
            _install_key_defaults()
            _patched = True


def current_key() -> bytes | None:
    """The HMAC key this process uses (None when running without a secret)."""
    return _secret


def _install_key_defaults() -> None:
    """Make the process secret the default HMAC key of every Pyro4 proxy, daemon and NS lookup."""
    proxy_init = Pyro4.core.Proxy.__init__
    daemon_init = Pyro4.core.Daemon.__init__
    locate = Pyro4.core._locateNS
    getstate = Pyro4.core.Proxy.__getstate_for_dict__
    setstate = Pyro4.core.Proxy.__setstate__

    def proxy_init_with_key(self, *args, **kwargs):
        proxy_init(self, *args, **kwargs)
        self._pyroHmacKey = _secret

    def daemon_init_with_key(self, *args, **kwargs):
        daemon_init(self, *args, **kwargs)
        self._pyroHmacKey = _secret

    def locate_with_key(host=None, port=None, broadcast=False, hmac_key=None):
        # hpbandster passes no key and would allow a UDP broadcast lookup: never broadcast.
        return locate(host, port, broadcast=False, hmac_key=hmac_key or _secret)

    def getstate_without_key(self):
        state = list(getstate(self))
        state[5] = None  # never send the HMAC key over the wire inside a proxy
        return tuple(state)

    def setstate_with_local_key(self, state):
        state = list(state)
        state[5] = _secret
        setstate(self, tuple(state))

    Pyro4.core.Proxy.__init__ = proxy_init_with_key
    Pyro4.core.Daemon.__init__ = daemon_init_with_key
    Pyro4.core._locateNS = locate_with_key
    Pyro4.locateNS = locate_with_key
    Pyro4.naming.locateNS = locate_with_key
    Pyro4.core.Proxy.__getstate_for_dict__ = getstate_without_key
    Pyro4.core.Proxy.__setstate__ = setstate_with_local_key


class NameServer:
    """A Pyro4 nameserver in a background thread, bound to ``host`` (port 0 = any free port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self._daemon: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> tuple[str, int]:
        """Start serving; returns the (host, port) clients connect to."""
        _, self._daemon, _ = Pyro4.naming.startNS(host=self.host, port=self.port, enableBroadcast=False, hmac=_secret)
        host, port = self._daemon.locationStr.rsplit(":", 1)
        self.host, self.port = host.strip("[]"), int(port)
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
    """``HOST:PORT`` → (host, port); a ConfigError naming ``field`` otherwise."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"{field}={text!r} must be HOST:PORT (e.g. 10.0.0.5:9090)")
    return host.strip("[]"), int(port)


def local_address_towards(host: str) -> str:
    """This machine's address on the route to ``host`` (where a worker's daemon should listen)."""
    if is_loopback(host):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, 9))  # no packet is sent for UDP connect; this only picks the route
        return sock.getsockname()[0]

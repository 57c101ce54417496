"""Pyro4 (the transport under hpbandster), configured once per process (pinned by ``tests/adapters/test_pyro.py``).

Three problems of hpbandster 0.7.4 over Pyro4 4.82 are fixed here by :func:`configure`:

1. **NumPy 2 hang.** serpent writes NumPy scalars with ``repr`` — under NumPy 2 that is
   ``np.float64(3.0)``, which the receiver cannot parse; the failing call is *oneway*, so the
   error is dropped and the run waits forever. We register serpent serializers that write
   NumPy scalars and arrays as Python literals (and the engine sends plain data anyway).
2. **Serializer.** Only ``serpent`` is sent and accepted — never pickle.
3. **Authentication.** With a shared secret every Pyro message carries an HMAC; a peer without
   the key is refused by the nameserver, the master and the workers. hpbandster creates its
   proxies and daemons itself, so the key is installed as the default of every
   :class:`Pyro4.Proxy`, :class:`Pyro4.Daemon` and ``Pyro4.locateNS`` (private attributes and
   functions of Pyro4); proxies sent over the wire (the result callback) never carry the key —
   the receiver applies its own. A UDP broadcast lookup of the nameserver is never made.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import Pyro4
import Pyro4.core
import Pyro4.naming
import serpent

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


def start_nameserver(host: str, port: int) -> tuple[Any, str, int]:
    """A Pyro4 nameserver daemon bound to ``host:port`` (0 = a free port), with this process's key:
    (daemon, host, port). Serve it with ``daemon.requestLoop()``; stop it with ``daemon.shutdown()``."""
    _, daemon, _ = Pyro4.naming.startNS(host=host, port=port, enableBroadcast=False, hmac=_secret)
    bound_host, bound_port = daemon.locationStr.rsplit(":", 1)
    return daemon, bound_host.strip("[]"), int(bound_port)


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

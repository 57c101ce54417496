"""The Pyro4 adapter (and the engine's transport on it): NumPy-2 serialisation fix, serpent only, shared-secret
authentication. These fail if Pyro4's private attributes the adapter patches change underneath."""

from __future__ import annotations

import ast
import threading
import time

import numpy as np
import Pyro4
import pytest
import serpent
from hpbandster.core.dispatcher import Dispatcher

from composer_automl.adapters.pyro import configure, plain
from composer_automl.config import ConfigError
from composer_automl.engine import transport
from composer_automl.engine.worker import fetch_spec


@pytest.fixture
def secret():
    """Run a test with a process secret; always restore the keyless default afterwards."""
    configure("s3cret-for-tests")
    yield "s3cret-for-tests"
    configure(None)


def test_numpy_scalars_serialize_as_python_literals():
    """After configure(), NumPy scalars/arrays cross serpent as plain Python values (the NumPy-2 hang fix)."""
    configure(None)
    payload = {"budget": np.float64(3.0), "layer_00": np.str_("A"), "d": np.int64(64), "v": np.arange(2)}
    text = serpent.dumps(payload).decode()
    assert "np." not in text
    assert serpent.loads(text.encode()) == {"budget": 3.0, "layer_00": "A", "d": 64, "v": [0, 1]}
    ast.literal_eval(text.split("\n", 1)[1])  # what the receiving side must be able to parse


def test_plain_converts_nested_numpy():
    """plain() turns nested NumPy values into JSON/serpent-safe Python values."""
    out = plain({"a": [np.float32(0.5), (np.int8(2),)], "b": {"c": np.bool_(True)}})
    assert out == {"a": [0.5, [2]], "b": {"c": True}}
    assert type(out["a"][0]) is float and type(out["b"]["c"]) is bool


def test_only_serpent_is_accepted():
    """The process sends serpent and accepts nothing else (never pickle)."""
    configure(None)
    assert Pyro4.config.SERIALIZER == "serpent"
    assert Pyro4.config.SERIALIZERS_ACCEPTED == {"serpent"}


def test_serializer_other_than_serpent_is_refused():
    """A client that sends json (or pickle) to our nameserver is refused."""
    configure(None)
    ns = transport.NameServer()
    host, port = ns.start()
    try:
        proxy = Pyro4.Proxy(f"PYRO:Pyro.NameServer@{host}:{port}")
        proxy._pyroSerializer = "json"
        with pytest.raises(Pyro4.errors.PyroError):
            proxy.ping()
    finally:
        ns.shutdown()


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "my-cluster-node"])
def test_network_bind_without_secret_is_refused(host):
    """Binding to a non-loopback address needs a shared secret (ConfigError naming the fix)."""
    with pytest.raises(ConfigError, match=f"^host='{host}' is reachable from the network: set a shared secret"):
        transport.check_bind(host, None)
    transport.check_bind(host, "s")
    transport.check_bind("127.0.0.1", None)


def test_secret_from_environment(monkeypatch):
    """The secret falls back to $COMPOSER_AUTOML_SECRET; the config value wins."""
    monkeypatch.setenv(transport.SECRET_ENV, "from-env")
    assert transport.resolve_secret(None) == "from-env"
    assert transport.resolve_secret("given") == "given"


@pytest.mark.timeout(30)
def test_client_without_secret_cannot_register_or_post(secret):
    """With a secret, a keyless client can neither use the nameserver, nor post a result, nor join."""
    ns = transport.NameServer()
    host, port = ns.start()
    results = []
    dispatcher = Dispatcher(results.append, run_id="sec", nameserver=host, nameserver_port=port, host=host)
    thread = threading.Thread(target=dispatcher.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        uri = None
        while uri is None and time.monotonic() < deadline:
            with Pyro4.locateNS(host=host, port=port) as keyed:  # with the key: works
                uri = keyed.list(prefix="hpbandster.run_sec.dispatcher").get("hpbandster.run_sec.dispatcher")
            time.sleep(0.05)
        assert uri is not None
        configure(None)  # from here on this process is a client without the secret
        with pytest.raises(Pyro4.errors.PyroError):
            with Pyro4.locateNS(host=host, port=port) as ns_proxy:
                ns_proxy.register("hpbandster.run_sec.worker.intruder", "PYRO:x@127.0.0.1:1")
        with pytest.raises(Pyro4.errors.PyroError):
            with Pyro4.Proxy(uri) as intruder:
                intruder.register_result(id=(0, 0, 0), result={"result": {"loss": 0.0}, "exception": None})
        with pytest.raises(ConfigError, match="secret"):
            fetch_spec(host, port, "sec", wait_s=2)
        assert results == []
    finally:
        configure(secret)
        dispatcher.shutdown()
        thread.join(timeout=10)
        ns.shutdown()


def test_the_private_pyro4_attributes_the_adapter_patches_exist():
    """The adapter replaces these Pyro4 internals; a Pyro4 without them must fail here, not silently run keyless."""
    import Pyro4.core
    import Pyro4.naming

    for owner, name in [(Pyro4.core, "_locateNS"), (Pyro4.core.Proxy, "__getstate_for_dict__"),
                        (Pyro4.core.Proxy, "__setstate__"), (Pyro4.naming, "startNS")]:
        assert hasattr(owner, name), f"Pyro4 changed: {owner}.{name} is gone"
    configure("k")
    try:
        proxy = Pyro4.Proxy("PYRO:x@127.0.0.1:1")
        assert proxy._pyroHmacKey == b"k" and proxy.__getstate_for_dict__()[5] is None  # the key never travels
    finally:
        configure(None)

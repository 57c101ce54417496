"""GPU assignment of local workers: each spawned worker process gets its own CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from composer_automl.config import ConfigError
from composer_automl.engine.pool import LocalWorkers, PoolSettings


def test_gpus_are_shared_out_per_worker_and_too_few_is_one_error(monkeypatch):
    assert PoolSettings(n_workers=2, gpus=[4, 5, 6, 7], gpus_per_worker=2).worker_gpus() == ["4,5", "6,7"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert PoolSettings(n_workers=2).worker_gpus() == ["1", "3"]  # every GPU this process may use
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert PoolSettings(n_workers=2).worker_gpus() == [None, None]  # no GPU: environment left alone
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ConfigError, match="n_workers=2 x gpus_per_worker=1 needs 2 GPUs; this machine shows 1"):
        PoolSettings(n_workers=2).worker_gpus()
    with pytest.raises(ConfigError, match="gpus lists 1"):
        PoolSettings(n_workers=2, gpus=[0])
    with pytest.raises(ConfigError, match="gpus_per_worker must be >= 1"):
        PoolSettings(gpus_per_worker=0)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads worker environments through /proc")
def test_each_spawned_local_worker_has_its_own_cuda_visible_devices(tmp_path):
    """The real worker processes (pointed at a nameserver that is not there) carry their GPU ids."""
    settings = PoolSettings(n_workers=2, gpus=[6, 7])
    workers = LocalWorkers(2, "127.0.0.1:9", "nope", 1, None, tmp_path, settings.worker_gpus())
    try:
        seen = {}
        for i, proc in workers.procs.items():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
                seen[i] = [e for e in environ if e.startswith(b"CUDA_VISIBLE_DEVICES=")]
                if seen[i]:
                    break
                time.sleep(0.1)
        assert seen == {0: [b"CUDA_VISIBLE_DEVICES=6"], 1: [b"CUDA_VISIBLE_DEVICES=7"]}
    finally:
        workers.stop(grace_s=0.5)

"""GPU assignment of local workers: each spawned worker process gets its own CUDA_VISIBLE_DEVICES (one GPU, several,
or one shared by ``workers_per_gpu`` workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from composer_automl.config import ConfigError
from composer_automl.engine.pool import (GPU_MEMORY_FRACTION_ENV, LocalWorkers, PoolSettings,
                                         apply_gpu_memory_fraction)


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


def test_workers_per_gpu_shares_each_gpu_between_workers_and_too_many_is_one_error(monkeypatch):
    """workers_per_gpu=k: worker i gets GPU i mod len(gpus), so k workers share each GPU (fewer workers still
    spread over every GPU); more workers than GPUs × k, sharing and several GPUs per worker at once, or k < 1:
    one error naming the field."""
    assert PoolSettings(n_workers=6, gpus=[2, 3, 5], workers_per_gpu=2).worker_gpus() == ["2", "3", "5", "2", "3", "5"]
    assert PoolSettings(n_workers=2, gpus=[2, 3], workers_per_gpu=4).worker_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert PoolSettings(n_workers=4, workers_per_gpu=4).worker_gpus() == ["0"] * 4
    with pytest.raises(ConfigError, match=r"^n_workers=5 x gpus_per_worker=1 at workers_per_gpu=4 needs 2 GPUs; "
                                          r"this machine shows 1 \(0\)$"):
        PoolSettings(n_workers=5, workers_per_gpu=4).worker_gpus()
    with pytest.raises(ConfigError, match=r"^gpus: n_workers=5 x gpus_per_worker=1 at workers_per_gpu=2 needs 3 GPUs; "
                                          r"gpus lists 2$"):
        PoolSettings(n_workers=5, gpus=[0, 1], workers_per_gpu=2)
    with pytest.raises(ConfigError, match="^workers_per_gpu must be >= 1, got 0$"):
        PoolSettings(workers_per_gpu=0)
    with pytest.raises(ConfigError, match="^workers_per_gpu=2 shares a GPU between workers, gpus_per_worker=2 gives "
                                          "each several: set one of them to 1$"):
        PoolSettings(workers_per_gpu=2, gpus_per_worker=2)


def make_unstarted_workers(gpus: list[str | None], fraction: float | None) -> LocalWorkers:
    """Local workers whose environments can be read, with no process started."""
    workers = LocalWorkers.__new__(LocalWorkers)
    workers.threads, workers.secret, workers.gpus, workers.gpu_memory_fraction = 1, None, gpus, fraction
    return workers


def test_a_shared_gpu_gives_each_worker_its_share_of_memory(monkeypatch):
    """workers_per_gpu=k: each worker's environment caps its allocations at 1/k of the GPU's memory; a worker
    with a GPU of its own, or none, has no cap (and an inherited cap is dropped); on a machine without CUDA
    the cap is not applied."""
    monkeypatch.setenv(GPU_MEMORY_FRACTION_ENV, "0.5")  # the master's own, never passed on as it is
    shared = PoolSettings(n_workers=6, gpus=[0, 1], workers_per_gpu=3)
    workers = make_unstarted_workers(shared.worker_gpus(), shared.gpu_memory_fraction)
    assert [workers.environment(i)[GPU_MEMORY_FRACTION_ENV] for i in range(6)] == ["0.333333"] * 6
    own = PoolSettings(n_workers=2, gpus=[0, 1])
    assert own.gpu_memory_fraction is None
    assert GPU_MEMORY_FRACTION_ENV not in make_unstarted_workers(own.worker_gpus(), None).environment(0)
    assert GPU_MEMORY_FRACTION_ENV not in make_unstarted_workers([None], 0.5).environment(0)  # no GPU: no cap
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert apply_gpu_memory_fraction() is None  # no CUDA device here: a no-op, never an error


def spawned_environment(workers: LocalWorkers, names: tuple[bytes, ...] = (b"CUDA_VISIBLE_DEVICES=",)
                        ) -> dict[int, list[bytes]]:
    """Each spawned worker process's environment entries starting with one of ``names``, read from /proc."""
    seen = {}
    for i, proc in workers.procs.items():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
            seen[i] = [e for e in environ if e.startswith(names)]
            if seen[i]:
                break
            time.sleep(0.1)
    return seen


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads worker environments through /proc")
@pytest.mark.parametrize("settings, expected", [
    (PoolSettings(n_workers=2, gpus=[6, 7]), [["CUDA_VISIBLE_DEVICES=6"], ["CUDA_VISIBLE_DEVICES=7"]]),
    (PoolSettings(n_workers=3, gpus=[6], workers_per_gpu=3),  # three workers share GPU 6, a third of it each
     [[f"{GPU_MEMORY_FRACTION_ENV}=0.333333", "CUDA_VISIBLE_DEVICES=6"]] * 3),
])
def test_each_spawned_local_worker_sees_only_its_own_gpu(tmp_path, settings, expected):
    """The real worker processes (pointed at a nameserver that is not there) carry their GPU ids: their own,
    or the one GPU they share with workers_per_gpu, with their share of its memory."""
    workers = LocalWorkers(settings.n_workers, "127.0.0.1:9", "nope", 1, None, tmp_path, settings.worker_gpus(),
                           settings.gpu_memory_fraction)
    try:
        seen = spawned_environment(workers, (b"CUDA_VISIBLE_DEVICES=", f"{GPU_MEMORY_FRACTION_ENV}=".encode()))
        assert {i: sorted(e.decode() for e in entries) for i, entries in seen.items()} == dict(enumerate(expected))
    finally:
        workers.stop(grace_s=0.5)


@pytest.mark.gpu
@pytest.mark.timeout(120)
def test_workers_sharing_a_gpu_each_allocate_within_their_share():
    """On a real GPU: two workers packed on GPU 0 (workers_per_gpu=2) each get CUDA_VISIBLE_DEVICES=0 and half
    its memory; in such a worker's environment 40 % of the GPU allocates and 60 % is refused."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    settings = PoolSettings(n_workers=2, gpus=[0], workers_per_gpu=2)
    env = make_unstarted_workers(settings.worker_gpus(), settings.gpu_memory_fraction).environment(1)
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env[GPU_MEMORY_FRACTION_ENV] == "0.5"
    probe = (
        "import torch\n"
        "from composer_automl.engine.pool import apply_gpu_memory_fraction\n"
        "assert apply_gpu_memory_fraction() == 0.5\n"
        "total = torch.cuda.get_device_properties(0).total_memory\n"
        "x = torch.empty(int(0.4 * total), dtype=torch.uint8, device='cuda'); del x\n"
        "try:\n"
        "    torch.empty(int(0.6 * total), dtype=torch.uint8, device='cuda')\n"
        "except torch.OutOfMemoryError:\n"
        "    print('capped')\n"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "capped"

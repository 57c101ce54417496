"""Spawn a small gloo world on localhost, failing (not hanging) after a timeout."""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable

import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry(rank: int, fn: Callable, world_size: int, port: int, results: Any, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    import torch

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        results[rank] = fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def run_world(fn: Callable, world_size: int, *args: Any, timeout: float = 110.0) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` spawned gloo processes; return their results."""
    manager = mp.Manager()
    results = manager.dict()
    ctx = mp.start_processes(
        _entry, args=(fn, world_size, free_port(), results, args), nprocs=world_size, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + timeout
    try:
        while not ctx.join(timeout=max(0.0, deadline - time.monotonic())):  # False until all exited
            if time.monotonic() >= deadline:
                raise TimeoutError(f"distributed run did not finish within {timeout} s")
    finally:
        for proc in ctx.processes:
            if proc.is_alive():
                proc.kill()
    out = [results[r] for r in range(world_size)]
    manager.shutdown()
    return out

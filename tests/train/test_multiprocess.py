"""Multi-process training on localhost over gloo, launched the way a cluster launches it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from indexed_data import make_dataset

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(node_rank: int, nnodes: int, nproc: int, port: int, target: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}", f"--node_rank={node_rank}",
           f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1", f"--master_port={port}", *target]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[str]:
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    return outputs


@pytest.mark.slow  # TP=2 over gloo in the default run: tests/train/test_checkpoints.py
@pytest.mark.timeout(400)  # process start-up alone took > 110 s on a loaded 2-core box
def test_two_node_torchrun_trains_tp2(tmp_path):
    """`torchrun --nnodes 2` (one process per "node", gloo) runs `composer-automl train` with TP=2
    across the nodes: 4 optimizer steps finish and a sharded (megatron dist-checkpoint) checkpoint is written."""
    data = make_dataset(tmp_path / "data")
    port = free_port()
    args = ["-m", "composer_automl", "train", f"data={data}", f"out_dir={tmp_path / 'run'}", "model=tiny",
            "trainer.accelerator=cpu", "trainer.num_nodes=2", "trainer.devices=1", "parallel.tp=2",
            "trainer.max_steps=4", "trainer.seq_len=32", "trainer.micro_batch_size=2", "trainer.log_every=1",
            "trainer.val_every=2", "trainer.val_batches=1", "trainer.ckpt_every=4"]
    wait_all([torchrun(rank, 2, 1, port, args) for rank in (0, 1)], timeout=350)
    ckpt = tmp_path / "run" / "checkpoints" / "step_000004.ckpt"
    assert {"meta.json", "metadata.json", "common.pt"} <= {p.name for p in ckpt.iterdir()}  # megatron dist-checkpoint
    assert json.loads((ckpt / "meta.json").read_text())["tp"] == 2


@pytest.mark.slow
def test_tp2_dp2_four_processes(tmp_path):
    """TP=2 × DP=2: losses are equal within each TP group and differ between data-parallel
    replicas (different data); after clipped steps, norm weights are identical on all ranks and
    the same TP shard is identical across replicas (DDP reduces over the DP group only)."""
    data = make_dataset(tmp_path / "data")
    wait_all([torchrun(0, 1, 4, free_port(), [str(HERE / "dp_tp_worker.py"), str(data), str(tmp_path)])], timeout=110)
    ranks = sorted((json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(4)), key=lambda r: r["rank"])
    by_layout = {(r["dp_rank"], r["tp_rank"]): r for r in ranks}
    assert sorted(by_layout) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for dp in (0, 1):
        assert len(by_layout[dp, 0]["losses"]) == 3
        assert by_layout[dp, 0]["losses"] == pytest.approx(by_layout[dp, 1]["losses"], abs=1e-6)
    assert by_layout[0, 0]["losses"] != pytest.approx(by_layout[1, 0]["losses"], abs=1e-4)
    for r in ranks:
        assert r["norm"] == pytest.approx(ranks[0]["norm"], abs=1e-7)
    for tp in (0, 1):
        assert by_layout[0, tp]["shard"] == pytest.approx(by_layout[1, tp]["shard"], abs=1e-7)
    assert by_layout[0, 0]["shard"] != pytest.approx(by_layout[0, 1]["shard"], abs=1e-4)

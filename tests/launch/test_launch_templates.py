"""The SLURM and torchrun templates: per-job MASTER_PORT, NCCL error handling, task/GPU consistency."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

LAUNCH = Path(__file__).resolve().parents[2] / "launch"


def fake_bin(tmp_path: Path) -> Path:
    """`srun`, `scontrol` and `python` stand-ins that print what the real ones would be given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    scripts = {
        "scontrol": "echo node0; echo node1",
        "srun": 'echo "srun $*"; python "$@"',
        "python": 'echo "MASTER_PORT=$MASTER_PORT TORCH_NCCL_ASYNC_ERROR_HANDLING=$TORCH_NCCL_ASYNC_ERROR_HANDLING ARGS=$*"',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def run(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {"PATH": f"{fake_bin(tmp_path)}:{os.environ['PATH']}", "HOME": str(tmp_path), **env}
    return subprocess.run(["bash", str(LAUNCH / script), "model=tiny"], env=full_env, capture_output=True,
                          text=True, timeout=20)


def test_slurm_template_derives_the_port_from_the_job_and_fails_fast_on_nccl_errors(tmp_path):
    """MASTER_PORT = 10000 + job id mod 50000; TORCH_NCCL_ASYNC_ERROR_HANDLING=1; devices from tasks/node."""
    done = run("slurm.sbatch", tmp_path, SLURM_JOB_ID="123456", SLURM_JOB_NODELIST="node[0-1]",
               SLURM_NTASKS_PER_NODE="8", SLURM_GPUS_PER_NODE="8", SLURM_JOB_NUM_NODES="2")
    assert done.returncode == 0, done.stderr
    assert f"MASTER_PORT={10000 + 123456 % 50000} TORCH_NCCL_ASYNC_ERROR_HANDLING=1" in done.stdout
    assert "trainer.num_nodes=2 trainer.devices=8 model=tiny" in done.stdout


def test_slurm_template_refuses_tasks_per_node_unequal_to_gpus_per_node(tmp_path):
    """--ntasks-per-node 4 with --gpus-per-node 8 is one `error:` line before srun starts."""
    done = run("slurm.sbatch", tmp_path, SLURM_JOB_ID="7", SLURM_JOB_NODELIST="node0",
               SLURM_NTASKS_PER_NODE="4", SLURM_GPUS_PER_NODE="h100:8", SLURM_JOB_NUM_NODES="1")
    assert done.returncode == 2 and done.stderr.count("error:") == 1 and "srun" not in done.stdout


def test_torchrun_template_uses_the_shared_job_id_for_its_port(tmp_path):
    """Every node derives the same port from JOB_ID; without one it falls back to 29500."""
    done = run("torchrun.sh", tmp_path, JOB_ID="60001", GPUS_PER_NODE="2")
    assert done.returncode == 0, done.stderr
    assert "TORCH_NCCL_ASYNC_ERROR_HANDLING=1" in done.stdout
    assert f"--master_port {10000 + 60001 % 50000}" in done.stdout
    assert "--master_port 29500" in run("torchrun.sh", tmp_path / "x", GPUS_PER_NODE="2").stdout

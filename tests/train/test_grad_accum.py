"""Gradient accumulation in ``composer-automl train``: same gradients as one big batch; exact resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from composer_automl.config import ConfigError, to_dataclass
from composer_automl.train.config import TrainConfig
from composer_automl.train.data import StepBatchSampler
from indexed_data import make_dataset

HERE = Path(__file__).resolve().parent


def config(data: Path, out: Path, **trainer) -> dict:
    steps = trainer.pop("max_steps", 2)
    resume = trainer.pop("resume", None)
    return {"model": "tiny", "data": {"path": str(data)}, "out_dir": str(out), "resume": resume,
            "trainer": {"accelerator": "cpu", "max_steps": steps, "seq_len": 32, "log_every": 1, "val_every": 0,
                        "ckpt_every": 0, "grad_clip": 0.0, **trainer},
            "optim": {"max_steps": steps, "warmup_steps": 1, "lr": 3e-3}}


def run_in_process(runs: list[tuple[dict, Path]], timeout: float = 400) -> list[dict]:
    """Run configs one after another in one fresh process (tests/train/run_worker.py)."""
    spec = runs[0][1].parent / f"runs_{runs[0][1].stem}.json"
    spec.write_text(json.dumps([{"config": c, "out": str(out)} for c, out in runs]))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(HERE / "run_worker.py"), str(spec)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return [json.loads(out.read_text()) for _, out in runs]


def test_micro_batches_of_one_step_cover_the_same_samples_as_one_big_batch():
    """accum=4 × micro=2 × DP=2 reads, per optimizer step, exactly the windows of accum=1 × micro=8 × DP=2."""
    def step_windows(micro: int, accum: int, step: int) -> list[int]:
        ranks = [StepBatchSampler(1000, micro, r, 2, seed=5) for r in (0, 1)]
        return sorted(i for m in range(accum) for r in ranks for i in r.batch(step * accum + m))

    for step in range(3):
        assert step_windows(2, 4, step) == step_windows(8, 1, step)


def test_bad_grad_accum_and_keep_last_k_are_config_errors():
    """grad_accum < 1 and keep_last_k < 1 are one ConfigError naming the field."""
    for field in ("grad_accum", "keep_last_k"):
        with pytest.raises(ConfigError, match=f"trainer.{field}=0 must be a positive integer"):
            to_dataclass(TrainConfig, {"data": {"path": "x"}, "trainer": {field: 0}}, "train")


@pytest.mark.timeout(450)  # one process, five short runs; imports alone take minutes on a loaded 2-core box
def test_accumulation_equals_one_big_batch_and_resumes_exactly(tmp_path):
    """accum=4 × micro=2 gives the loss, gradient norm and weights of accum=1 × micro=8 (fp32
    tolerance) over two optimizer steps; a run checkpointed after step 2 of 4 with accumulation
    resumes with the losses of the uninterrupted run, also when the resumed run splits the same
    global batch differently (micro=8, accum=1)."""
    data = make_dataset(tmp_path / "data")
    ckpt = tmp_path / "acc_full" / "checkpoints" / "step_000002.ckpt"
    accum, big, full, resumed, translated = run_in_process([
        (config(data, tmp_path / "acc", micro_batch_size=2, grad_accum=4), tmp_path / "acc.json"),
        (config(data, tmp_path / "big", micro_batch_size=8, grad_accum=1), tmp_path / "big.json"),
        (config(data, tmp_path / "acc_full", micro_batch_size=2, grad_accum=4, max_steps=4, ckpt_every=2),
         tmp_path / "full.json"),
        (config(data, tmp_path / "acc_resumed", micro_batch_size=2, grad_accum=4, max_steps=4, resume=str(ckpt)),
         tmp_path / "resumed.json"),
        (config(data, tmp_path / "big_resumed", micro_batch_size=8, grad_accum=1, max_steps=4, resume=str(ckpt)),
         tmp_path / "translated.json"),
    ])
    assert sorted(accum["steps"]) == ["1", "2"]
    for step in ("1", "2"):
        for key in ("train/loss", "train/grad_norm"):
            assert accum["steps"][step][key] == pytest.approx(big["steps"][step][key], rel=1e-5), (step, key)
    w_accum, w_big = (torch.load(tmp_path / f"{n}.weights.pt") for n in ("acc", "big"))
    for name in w_big:  # Adam divides by √v: summation-order noise on rare embedding rows shows up ~1e-5
        torch.testing.assert_close(w_accum[name], w_big[name], rtol=1e-4, atol=5e-5)  # (lr 3e-3 per step)

    assert sorted(resumed["steps"]) == ["3", "4"] == sorted(translated["steps"])
    for step in ("3", "4"):
        assert resumed["steps"][step]["train/loss"] == pytest.approx(full["steps"][step]["train/loss"], abs=1e-6)
        assert translated["steps"][step]["train/loss"] == pytest.approx(full["steps"][step]["train/loss"], rel=1e-5)
    assert full["steps"]["1"]["train/loss"] != pytest.approx(full["steps"]["4"]["train/loss"], abs=1e-3)

"""``composer-automl train``'s speed options (fused AdamW, activation checkpointing, compiled layers) train the
numbers of the default path, and no training step waits on the device except the logging ones."""

from __future__ import annotations

import pytest
import torch

from indexed_data import make_dataset
from test_grad_accum import config, run_in_process


def assert_same_run(got: dict, reference: dict, rel: float = 1e-5) -> None:
    assert sorted(got["steps"]) == sorted(reference["steps"])
    for step, figures in reference["steps"].items():
        for key, value in figures.items():
            assert got["steps"][step][key] == pytest.approx(value, rel=rel), (step, key)


@pytest.mark.timeout(300)
def test_fused_adamw_and_selective_checkpointing_train_the_default_numbers_without_per_step_syncs(tmp_path):
    """8 steps, logging every 4th: optim.fused=true with trainer.activation_checkpointing=selective gives the
    default run's losses and gradient norms (fp32 tolerance), and in both runs only the logging steps read a
    tensor on the host (on a GPU every such read waits for the device)."""
    data = make_dataset(tmp_path / "data")
    plain, fast = run_in_process([
        (config(data, tmp_path / "plain", max_steps=8, log_every=4, micro_batch_size=2), tmp_path / "plain.json"),
        (config(data, tmp_path / "fast", max_steps=8, log_every=4, micro_batch_size=2,
                activation_checkpointing="selective") | {"optim": {"max_steps": 8, "warmup_steps": 1, "lr": 3e-3,
                                                                    "fused": True}}, tmp_path / "fast.json"),
    ])
    assert_same_run(fast, plain)
    reads = fast["host_reads"]  # (torch's unfused AdamW reads its step counters, CPU tensors also on a GPU)
    assert len(reads) == 8 and reads[3] > 1 and reads[7] > 1  # the logging steps (4 and 8) read
    assert reads[:3] == [0, 0, 0], reads  # other steps read nothing of the device ...
    # ... only, once a loss was logged, the progress bar's host copy of it (Lightning converts it at batch end and
    # when the bar draws: no device wait on a GPU)
    assert reads[4] == reads[5] == reads[6] <= 2, reads


@pytest.mark.slow
@pytest.mark.timeout(900)  # Inductor compiles for the CPU: minutes on a loaded 2-core box
def test_compiled_checkpointed_fused_run_accumulates_and_resumes_like_the_default(tmp_path):
    """parallel.compile=true + activation_checkpointing=selective + optim.fused=true, with accumulation (2 × 2):
    the default run's losses, gradient norms and weights; saved after step 2 of 4 and resumed, the losses of the
    uninterrupted run."""
    data = make_dataset(tmp_path / "data")
    fast = {"parallel": {"compile": True}}
    fast_trainer = {"activation_checkpointing": "selective", "micro_batch_size": 2, "grad_accum": 2}
    optim = {"optim": {"max_steps": 4, "warmup_steps": 1, "lr": 3e-3, "fused": True}}
    ckpt = tmp_path / "fast" / "checkpoints" / "step_000002.ckpt"
    plain, full, resumed = run_in_process([
        (config(data, tmp_path / "plain", max_steps=4, micro_batch_size=2, grad_accum=2), tmp_path / "plain.json"),
        (config(data, tmp_path / "fast", max_steps=4, ckpt_every=2, **fast_trainer) | fast | optim,
         tmp_path / "full.json"),
        (config(data, tmp_path / "resumed", max_steps=4, resume=str(ckpt), **fast_trainer) | fast | optim,
         tmp_path / "resumed.json"),
    ], timeout=880)
    assert_same_run(full, plain)
    w_plain, w_fast = (torch.load(tmp_path / f"{n}.weights.pt") for n in ("plain", "full"))
    for name, weight in w_plain.items():
        torch.testing.assert_close(w_fast[name], weight, rtol=1e-4, atol=5e-5)
    assert sorted(resumed["steps"]) == ["3", "4"]
    for step in ("3", "4"):
        assert resumed["steps"][step]["train/loss"] == pytest.approx(full["steps"][step]["train/loss"], abs=1e-6)

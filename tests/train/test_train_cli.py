"""``composer-automl train``: resume continues the run exactly, TensorBoard logs, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from composer_automl.presets import get_preset
from composer_automl.train.command import main
from indexed_data import make_dataset

SMALL = ["model=tiny", "trainer.accelerator=cpu", "trainer.seq_len=32", "trainer.micro_batch_size=4",
         "trainer.log_every=1", "trainer.val_every=0", "optim.warmup_steps=2", "optim.lr=3e-3"]


def run_cli(args: list[str], timeout: float = 55.0) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "composer_automl", "train", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def scalars(run_dir: Path, tag: str) -> dict[int, float]:
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


@pytest.mark.slow  # two CLI runs, ~45 s on 2 shared cores (more when they are busy)
@pytest.mark.timeout(300)
def test_resume_from_checkpoint_continues_the_same_run(tmp_path, capsys):
    """Save at step 3 of 6, resume from it: losses of steps 4–6 equal the uninterrupted run's;
    tokens/s and MFU reach TensorBoard; resuming with another model or global batch is one clear error."""
    data = make_dataset(tmp_path / "data")
    full = run_cli([f"data={data}", f"out_dir={tmp_path / 'full'}", "trainer.max_steps=6", "trainer.ckpt_every=3",
                    "trainer.peak_tflops=1.0", *SMALL])
    assert full.returncode == 0, full.stderr[-3000:]
    ckpt = tmp_path / "full" / "checkpoints" / "step_000003.ckpt"
    assert (ckpt / "meta.json").is_file() and (ckpt / "metadata.json").is_file()

    resumed = run_cli([f"data={data}", f"out_dir={tmp_path / 'resumed'}", "trainer.max_steps=6",
                       "trainer.ckpt_every=0", f"resume={ckpt}", *SMALL])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference, continued = scalars(tmp_path / "full", "train/loss"), scalars(tmp_path / "resumed", "train/loss")
    assert len(reference) == 6 and sorted(continued) == sorted(reference)[3:]
    for step, loss in continued.items():
        assert loss == pytest.approx(reference[step], abs=1e-6), step
    assert len(set(reference.values())) > 1  # the run really trained

    assert min(scalars(tmp_path / "full", "perf/tokens_per_s").values()) > 0
    mfu = list(scalars(tmp_path / "full", "perf/mfu").values())
    assert mfu and all(0 < m < 1 for m in mfu)  # tiny model on CPU vs a 1 TFLOP/s "peak"

    other = tmp_path / "model.yaml"
    get_preset("tiny").replace(d_model=128).save_yaml(other)
    bad_cases = {
        "saved from another model (fields ['d_model'] differ)": [f"model={other}"],
        "cannot continue the same data stream": ["trainer.micro_batch_size=2"],
    }
    for message, extra in bad_cases.items():
        with pytest.raises(SystemExit) as exit_info:
            main([f"data={data}", f"out_dir={tmp_path / 'bad'}", f"resume={ckpt}", *SMALL, *extra])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # nothing written before the error


@pytest.mark.parametrize(
    "override, message",
    [
        (["parallel.tp=3"], "parallel.tp=3 does not divide model.n_heads=4"),
        (["parallel.tp=4"], "parallel.tp=4 does not divide model.n_kv_heads=2"),
        (["parallel.tp=2", "trainer.devices=3"], "does not divide the number of processes"),
        (["data=/nonexistent/dataset"], "is not a prepared dataset"),
        (["model=nope"], "neither a preset"),
        (["trainer.seq_len=4096"], "exceeds model max_seq_len=256"),
        (["trainer.precision=fp8"], "trainer.precision='fp8' is not allowed"),
        (["+trainer.bogus=1"], "error: trainer.bogus is an unknown key; allowed: ['accelerator', "),
        (["parallel.impl=flash"], "parallel.impl='flash' is not allowed; choose one of ['local', 'te']"),
        (["parallel.impl=te"], "parallel.impl=te runs on CUDA only"),
        (["trainer.activation_checkpointing=some"], "trainer.activation_checkpointing='some' is not allowed; choose "
                                                    "one of ['full', 'none', 'selective']"),
        (["trainer.peak_tflops=0"], "trainer.peak_tflops=0.0 must be > 0 or null"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, capsys, override, message):
    """Each bad input exits 2 with one `error:` line naming the field, before any process starts."""
    data = make_dataset(tmp_path / "data", n_docs=4)
    with pytest.raises(SystemExit) as exit_info:
        main([f"data={data}", f"out_dir={tmp_path / 'out'}", *SMALL, *override])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1, err
    assert not (tmp_path / "out").exists()

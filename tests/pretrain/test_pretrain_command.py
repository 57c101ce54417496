"""`composer-automl pretrain` through the real Hydra CLI."""

from __future__ import annotations

import json

import pytest
import torch

from composer_automl.pretrain import command as pretrain_command


def small_overrides(tmp_path, corpus_cache):
    return [f"hydra.run.dir={tmp_path}", f"pretrain.data.cache_dir={corpus_cache}", "pretrain.data.max_bytes=300000",
            "pretrain.seq_len=32", "pretrain.batch_size=8", "pretrain.train_tokens=2048",
            "pretrain.valid_tokens=256", "pretrain.eval_every_steps=4", "pretrain.progress_bar=false"]


def test_pretrain_command_prints_loss_throughput_and_tensorboard_command(tmp_path, corpus_cache, capsys):
    """The command trains the tiny preset and ends with val_loss, tokens_per_s and a runnable tensorboard line."""
    pretrain_command.main(small_overrides(tmp_path, corpus_cache) + ["pattern=AMMA"])
    out = capsys.readouterr().out.splitlines()
    assert out[-3].startswith("val_loss: ") and float(out[-3].split()[1]) > 0
    assert out[-2].startswith("tokens_per_s: ") and float(out[-2].split()[1]) > 0
    assert out[-1] == f"tensorboard --logdir {tmp_path.resolve() / 'tensorboard'}"
    assert any("pattern=AMMA " in line for line in out)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["train_steps"] == 8 and list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("override, message", [
    ("pattern=AXM", "pattern"),
    ("model=huge", "unknown model preset"),
    ("+pretrain.batch_sise=4", "unknown key"),  # without "+", Hydra itself rejects the key
    ("pretrain.data.source=/definitely/not/here", "pretrain.data.source='/definitely/not/here': no such file or directory"),
    ("pretrain.grad_clip=-1", "pretrain.grad_clip=-1.0 is out of range"),
    ("pretrain.devices=2", "pretrain.devices=2: a pretraining run trains one model on one device"),
    ("pretrain.precision=16-mixed", "pretrain.precision='16-mixed' does not run on cpu"),
    pytest.param("pretrain.accelerator=gpu", "no CUDA device", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="needs a machine without CUDA")),
])
def test_pretrain_command_bad_input_exits_2_with_one_error_line(tmp_path, corpus_cache, capsys, override, message):
    """Bad overrides end with exit status 2 and one 'error:' line naming the problem, before training."""
    with pytest.raises(SystemExit) as exit_info:
        pretrain_command.main(small_overrides(tmp_path, corpus_cache) + [override])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not (tmp_path / "tensorboard").exists()

"""Reshardable checkpoints (save at TP=2, resume at TP=1 / TP=4), retention, export to one HybridLM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from composer_automl.export import load_hybrid
from composer_automl.export.command import main as export_main
from composer_automl.presets import get_preset
from composer_automl.train.command import main as train_main
from indexed_data import make_dataset
from test_grad_accum import config
from test_multiprocess import free_port

HERE = Path(__file__).resolve().parent


def torchrun_runs(nproc: int, runs: list[tuple[dict, Path]], timeout: float = 400) -> list[dict]:
    """Run configs one after another in an ``nproc``-process torchrun world (tests/train/run_worker.py)."""
    spec = runs[0][1].parent / f"runs_{runs[0][1].stem}.json"
    spec.write_text(json.dumps([{"config": c, "out": str(out)} for c, out in runs]))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(HERE / "run_worker.py"), str(spec)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(out.read_text()) for _, out in runs]


@pytest.fixture(scope="module")
def tp2_run(tmp_path_factory):
    """TP=2 (2 processes), micro 2 × accum 2, 4 steps, a checkpoint every step, keep_last_k=2.

    The model has 4 KV heads so that TP=4 divides it too."""
    root = tmp_path_factory.mktemp("tp2")
    data = make_dataset(root / "data")
    model = root / "model.yaml"
    get_preset("tiny").replace(n_kv_heads=4).save_yaml(model)
    cfg = config(data, root / "run", micro_batch_size=2, grad_accum=2, max_steps=4, ckpt_every=1, keep_last_k=2,
                 devices=2)
    cfg["model"], cfg["parallel"] = str(model), {"tp": 2}
    [record] = torchrun_runs(2, [(cfg, root / "tp2.json")])
    return root, data, model, record


def resume_config(root: Path, data: Path, model: Path, name: str, **trainer) -> dict:
    cfg = config(data, root / name, max_steps=4, resume=str(root / "run" / "checkpoints" / "step_000003.ckpt"),
                 **trainer)
    cfg["model"] = str(model)
    return cfg


@pytest.mark.timeout(900)  # two torchrun worlds; process start-up dominates on a loaded 2-core box
def test_tp2_checkpoint_resumes_at_tp1_with_another_dp_split_and_keeps_last_k(tp2_run):
    """Saved at TP=2 × DP=1 (micro 2 × accum 2), resumed at TP=1 × DP=2 (micro 2 × accum 1, the same
    global batch of 4): the step-4 loss equals the uninterrupted run's within fp32 tolerance. With a
    checkpoint every step and keep_last_k=2, exactly steps 3 and 4 remain; meta.json records the layout."""
    root, data, model, full = tp2_run
    ckpts = sorted(p.name for p in (root / "run" / "checkpoints").iterdir())
    assert ckpts == ["step_000003.ckpt", "step_000004.ckpt"]
    meta = json.loads((root / "run" / "checkpoints" / "step_000003.ckpt" / "meta.json").read_text())
    assert {k: meta[k] for k in ("step", "tp", "dp", "micro_batch_size", "grad_accum", "consumed_samples")} == \
        {"step": 3, "tp": 2, "dp": 1, "micro_batch_size": 2, "grad_accum": 2, "consumed_samples": 12}

    cfg = resume_config(root, data, model, "tp1_dp2", micro_batch_size=2, grad_accum=1, devices=2)
    [resumed] = torchrun_runs(2, [(cfg, root / "tp1.json")])
    assert sorted(resumed["steps"]) == ["4"]
    assert resumed["steps"]["4"]["train/loss"] == pytest.approx(full["steps"]["4"]["train/loss"], rel=1e-5)
    assert resumed["steps"]["4"]["train/grad_norm"] == pytest.approx(full["steps"]["4"]["train/grad_norm"], rel=1e-4)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tp2_checkpoint_resumes_at_tp4(tp2_run):
    """Saved at TP=2, resumed at TP=4 × DP=1 with micro 4 × accum 1: next-step loss as uninterrupted."""
    root, data, model, full = tp2_run
    cfg = resume_config(root, data, model, "tp4", micro_batch_size=4, grad_accum=1, devices=4)
    cfg["parallel"] = {"tp": 4}
    [resumed] = torchrun_runs(4, [(cfg, root / "tp4.json")])
    assert resumed["steps"]["4"]["train/loss"] == pytest.approx(full["steps"]["4"]["train/loss"], rel=1e-5)


@pytest.mark.timeout(300)
def test_export_of_tp2_training_gives_a_hybridlm_with_identical_logits(tp2_run, capsys):
    """`composer-automl export` of the TP=2 step-4 checkpoint → load_hybrid(folder) is a HybridLM whose
    logits equal the trained parallel model's; exporting into an existing folder is refused."""
    root, _, _, _ = tp2_run
    out = root / "exported"
    export_main([f"ckpt={root / 'run' / 'checkpoints' / 'step_000004.ckpt'}", f"out={out}"])
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "model.yaml"]
    model = load_hybrid(out)
    idx = (torch.arange(24) * 7 % model.spec.vocab_size).reshape(2, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(idx), torch.load(root / "tp2.logits.pt"), rtol=1e-5, atol=1e-5)
    trained = torch.load(root / "tp2.weights.pt")
    for name, tensor in model.state_dict().items():
        if name in trained:
            assert torch.equal(tensor, trained[name]), name

    with pytest.raises(SystemExit) as exit_info:
        export_main([f"ckpt={root / 'run' / 'checkpoints' / 'step_000004.ckpt'}", f"out={out}"])
    assert exit_info.value.code == 2 and "already exists" in capsys.readouterr().err


REMOTE_LOAD = """
import sys
sys.modules["composer_automl"] = None  # this process cannot import our package
import torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
idx = torch.load(sys.argv[2])
with torch.no_grad():
    torch.save(model(idx).logits, sys.argv[3])
"""


@pytest.mark.timeout(300)
def test_export_of_tp2_training_to_hf_loads_in_transformers_with_identical_logits(tp2_run, tmp_path):
    """`export format=hf` of the TP=2 step-4 checkpoint: AutoModelForCausalLM (our classes registered by importing
    composer_automl.modeling_hybrid) gives the trained parallel model's logits; its greedy generate() gives
    HybridLM.generate's tokens; a process that cannot import composer_automl loads the folder with
    trust_remote_code=True (the modeling code travels in it) to the same logits."""
    pytest.importorskip("transformers")
    from transformers import AutoModelForCausalLM

    import composer_automl.modeling_hybrid  # noqa: F401

    root, _, _, _ = tp2_run
    out = tmp_path / "hf"
    export_main([f"ckpt={root / 'run' / 'checkpoints' / 'step_000004.ckpt'}", f"out={out}", "format=hf"])
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    idx = (torch.arange(24) * 7 % model.config.vocab_size).reshape(2, 12)
    trained = torch.load(root / "tp2.logits.pt")
    with torch.no_grad():
        torch.testing.assert_close(model(idx).logits, trained, rtol=1e-5, atol=1e-5)

    ours = load_hybrid(out).generate(idx[:1, :6], 24, temperature=0.0)
    theirs = model.generate(idx[:1, :6], max_new_tokens=24, do_sample=False)
    n = theirs.shape[1]  # transformers stops early only at the end-of-document token
    assert torch.equal(theirs, ours[:, :n]) and (n == ours.shape[1] or theirs[0, -1] == model.config.eos_token_id)

    torch.save(idx, tmp_path / "idx.pt")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    done = subprocess.run([sys.executable, "-c", REMOTE_LOAD, str(out), str(tmp_path / "idx.pt"),
                           str(tmp_path / "remote.pt")], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    torch.testing.assert_close(torch.load(tmp_path / "remote.pt"), trained, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("what, says", [("missing", "is not a complete"),
                                        ("not_a_checkpoint", "meta.json is not a `composer-automl train` checkpoint")])
def test_export_of_a_non_checkpoint_is_one_clear_error(tmp_path, capsys, what, says):
    """ckpt= a missing folder or a folder that is not a train checkpoint → exit 2, one `error:` line, no output."""
    ckpt = tmp_path / "ckpt"
    if what == "not_a_checkpoint":
        ckpt.mkdir()
        (ckpt / "meta.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        export_main([f"ckpt={ckpt}", f"out={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1 and says in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(300)
def test_resume_that_would_change_the_data_stream_is_refused(tp2_run, capsys):
    """Resuming with another global batch (micro 4 × accum 2 instead of 4 sequences) or another
    seq_len is one `error:` line naming both layouts, before anything is written."""
    root, data, model, _ = tp2_run
    ckpt = root / "run" / "checkpoints" / "step_000003.ckpt"
    for extra in (["trainer.micro_batch_size=4", "trainer.grad_accum=2"], ["trainer.seq_len=16"]):
        with pytest.raises(SystemExit) as exit_info:
            train_main([f"data={data}", f"model={model}", f"out_dir={root / 'bad'}", f"resume={ckpt}",
                        "trainer.accelerator=cpu", "trainer.seq_len=32", "trainer.micro_batch_size=2", *extra])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("error:") == 1, err
        assert "cannot continue the same data stream" in err and "global batch 4" in err, err
    assert not (root / "bad").exists()


@pytest.mark.timeout(300)
def test_resume_with_another_layer_implementation_is_refused(tp2_run, tmp_path, capsys):
    """A checkpoint whose meta says parallel.impl=te (TE weight names) cannot be resumed by local layers:
    one `error:` line naming both implementations, nothing written."""
    root, data, model, _ = tp2_run
    ckpt = tmp_path / "step_000003.ckpt"
    shutil.copytree(root / "run" / "checkpoints" / "step_000003.ckpt", ckpt)
    meta = json.loads((ckpt / "meta.json").read_text())
    (ckpt / "meta.json").write_text(json.dumps({**meta, "impl": "te"}))
    with pytest.raises(SystemExit) as exit_info:
        train_main([f"data={data}", f"model={model}", f"out_dir={tmp_path / 'bad'}", f"resume={ckpt}",
                    "trainer.accelerator=cpu", "trainer.seq_len=32", "trainer.micro_batch_size=4"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1, err
    assert "was saved with parallel.impl=te, this run has parallel.impl=local" in err
    assert not (tmp_path / "bad").exists()


def save_under_te_names(folder: Path) -> dict:
    """A TP=1 checkpoint whose weights are stored under Transformer Engine's names (what a
    parallel.impl=te run writes for them), written in a one-process in-memory world; returns the
    HybridLM weights it holds."""
    import torch.distributed as dist
    from megatron.core import dist_checkpointing

    from composer_automl.parallel import build_parallel_model, parallel_to_hybrid, state
    from composer_automl.parallel.checkpoint import Layout, _in_process_strategy, model_sharded_state, write_meta
    from composer_automl.parallel.weights import impl_renames

    spec = get_preset("tiny")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    state.init_model_parallel(1, on_cpu=True)
    try:
        torch.manual_seed(3)
        model = build_parallel_model(spec, 1, on_cpu=True)
        sharded = model_sharded_state(model, impl_renames(spec, "te"))
        dist_checkpointing.save({"state_dict": sharded}, str(folder), sharded_strategy=_in_process_strategy())
        write_meta(folder, spec, Layout(tp=1, dp=1, micro_batch_size=1, grad_accum=1, seq_len=32), 1, impl="te")
        return parallel_to_hybrid([model.state_dict()], spec)
    finally:
        state.destroy_model_parallel()
        dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_export_reads_a_te_checkpoint_into_local_layers_on_cpu(tmp_path):
    """A checkpoint of parallel.impl=te (norm weights under TE's names) exports on a CPU machine without
    Transformer Engine: the exported HybridLM holds exactly the saved weights."""
    folder = tmp_path / "step_000001.ckpt"
    folder.mkdir()
    saved = save_under_te_names(folder)
    export_main([f"ckpt={folder}", f"out={tmp_path / 'exported'}"])
    exported = load_hybrid(tmp_path / "exported").state_dict()
    for name, tensor in saved.items():
        assert torch.equal(exported[name], tensor), name

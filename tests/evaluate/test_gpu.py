"""The GPU path of evaluate and of the hf export, through the same config fields as on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from composer_automl.evaluate.command import main as evaluate_main
from exports import SPEC, make_dataset, make_export

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_evaluate_on_gpu_in_bf16_matches_cpu_fp32_held_out_loss(tmp_path):
    """accelerator=gpu precision=bf16-mixed: the report says cuda bfloat16, the held-out loss is the CPU fp32
    one within bf16 tolerance, the lm-eval task and latency run on the GPU."""
    pytest.importorskip("lm_eval")
    hybrid, _ = make_export(tmp_path, "hybrid", seed=1)
    baseline, _ = make_export(tmp_path, "baseline", SPEC.replace(pattern="AMAM"), fmt="hf", seed=2)
    data = make_dataset(tmp_path)
    reports = {}
    for accelerator, precision in (("cpu", "32-true"), ("gpu", "bf16-mixed")):
        out = tmp_path / accelerator
        evaluate_main([f"models=[{hybrid},{baseline}]", f"data.path={data}", "limit=6", f"accelerator={accelerator}",
                       f"precision={precision}", "efficiency.reps=1", f"out={out}"])
        reports[accelerator] = json.loads((out / "report.json").read_text())
    assert reports["gpu"]["runtime"] == "cuda bfloat16 (autocast)"
    rows = {r["name"]: r for r in reports["gpu"]["rows"]}
    cpu_rows = {r["name"]: r for r in reports["cpu"]["rows"]}
    assert rows["loss"]["values"] == pytest.approx(cpu_rows["loss"]["values"], rel=2e-2)
    assert all(v > 0 for v in rows["decode_ms_per_token"]["values"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_hf_export_generates_hybridlm_tokens_on_cuda(tmp_path):
    """The hf export on CUDA (bf16 weights): transformers' greedy generate equals HybridLM.generate's there."""
    transformers = pytest.importorskip("transformers")
    import composer_automl.modeling_hybrid  # noqa: F401
    from composer_automl.export.files import load_hybrid

    hf, _ = make_export(tmp_path, "hf", fmt="hf", seed=3)
    model = transformers.AutoModelForCausalLM.from_pretrained(hf, dtype=torch.bfloat16).to("cuda").eval()
    ours = load_hybrid(hf, "cuda").to(torch.bfloat16)
    prompt = torch.tensor([list(b"def main(")], device="cuda")
    expected = ours.generate(prompt, 16, temperature=0.0)
    got = model.generate(prompt, max_new_tokens=16, do_sample=False)
    assert torch.equal(got, expected[:, : got.shape[1]])

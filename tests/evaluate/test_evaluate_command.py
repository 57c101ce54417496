"""``composer-automl evaluate`` end to end through the CLI: the side-by-side report, and bad input refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from composer_automl.evaluate.command import main as evaluate_main
from exports import SPEC, bare_export, make_bpe_tokenizer, make_dataset, make_export

pytest.importorskip("lm_eval")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A hybrid (native) and an `AM` baseline (hf) with the byte tokenizer, and a prepared byte-level dataset."""
    root = tmp_path_factory.mktemp("evaluate")
    hybrid, _ = make_export(root, "hybrid", seed=1)
    baseline, _ = make_export(root, "baseline", SPEC.replace(pattern="AMAM"), fmt="hf", seed=2)
    return root, hybrid, baseline, make_dataset(root)


@pytest.mark.timeout(180)
def test_two_models_side_by_side(setup, tmp_path, capsys):
    """A line per model and part on the console; report.json/md/png and one TensorBoard run per model; the
    markdown has a column per model and the difference with lm-eval's standard errors (√(σ_A² + σ_B²))."""
    root, hybrid, baseline, data = setup
    out = tmp_path / "report"
    evaluate_main([f"models=[{hybrid},{baseline}]", f"data.path={data}", "limit=6", "batch_size=4",
                   "efficiency.reps=1", "efficiency.prompt_tokens=16", "efficiency.decode_tokens=4", f"out={out}"])
    console = capsys.readouterr().out
    for name in ("hybrid", "baseline"):
        assert f"[{name}] held-out valid" in console and f"[{name}] py_cloze: acc" in console
        assert re.search(rf"\[{name}\] [\d,]+ params, .* decode [\d.]+ ms/token", console)
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "report.png", "tb"]
    assert sorted(p.name for p in (out / "tb").iterdir()) == ["baseline", "hybrid", "report"]

    report = json.loads((out / "report.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    acc = rows["py_cloze/acc"]
    assert [m["name"] for m in report["models"]] == ["hybrid", "baseline"]
    assert [m["format"] for m in report["models"]] == ["native", "hf"]
    assert rows["attention_layers"]["values"] == [2, 2] and rows["params"]["values"] == \
        [SPEC.num_params(), SPEC.replace(pattern="AMAM").num_params()]
    assert rows["kv_cache_bytes"]["values"][0] == SPEC.kv_cache_bytes(2048, 1, "float32")
    assert all(v > 0 for v in rows["decode_ms_per_token"]["values"] + rows["bits_per_byte"]["values"])
    markdown = (out / "report.md").read_text()
    delta = acc["values"][0] - acc["values"][1]
    sigma = (acc["stderr"][0] ** 2 + acc["stderr"][1] ** 2) ** 0.5
    assert f"| py_cloze/acc | {acc['values'][0]:.4g} ± {acc['stderr'][0]:.2g} |" in markdown
    assert f"{delta:+.4g} ± {sigma:.2g}" in markdown
    assert "| Δ hybrid − baseline | better |" in markdown and "| ratio baseline / hybrid | better |" in markdown
    assert "## held-out" in console and f"report: {out}/report.md" in console


@pytest.mark.parametrize("case", ["not_an_export", "missing_task_file", "tokenizers_differ", "limit_zero",
                                  "out_exists", "out_under_a_file", "gpu_without_cuda",
                                  pytest.param("unknown_task", marks=pytest.mark.slow)])  # indexes lm-eval's 15k tasks
def test_bad_input_is_one_error_line_before_any_work(setup, tmp_path, capsys, case):
    """Exit 2, one `error:` line naming the key as typed, and no report folder."""
    root, hybrid, baseline, data = setup
    out = tmp_path / "out"
    models = f"models=[{hybrid},{baseline}]"
    if case == "tokenizers_differ":
        bpe = make_bpe_tokenizer(tmp_path / "tokenizer.json")
        other, _ = make_export(tmp_path, "bpe", SPEC.replace(vocab_size=320),
                               tokenizer=["tokenizer=hf", f"tokenizer_path={bpe}"])
        models = f"models=[{hybrid},{other}]"
    if case == "gpu_without_cuda" and torch.cuda.is_available():
        pytest.skip("checks the refusal on a machine without CUDA")
    args, expected = {
        "not_an_export": ([f"models=[{hybrid},{root}]"], "models[1]="),
        "unknown_task": ([models, "tasks=[py_cloze,no_such_task_xyz]"], "tasks: 'no_such_task_xyz'"),
        "missing_task_file": ([models, f"tasks=[{tmp_path / 'mine.yaml'}]"], "tasks: '"),
        "tokenizers_differ": ([models, f"data.path={data}"], "data.compare=tokens"),
        "limit_zero": ([models, "limit=0"], "limit=0 must be an integer >= 1"),
        "out_exists": ([models, f"out={root}"], "out="),
        "out_under_a_file": ([models, f"out={hybrid / 'model.yaml'}/sub"], "out="),
        "gpu_without_cuda": ([models, "accelerator=gpu"], "accelerator=gpu but no CUDA device"),
    }[case]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main([*args, "efficiency.latency=false", *([] if case.startswith("out_") else [f"out={out}"])])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1 and expected in err, err
    assert not out.exists()


WITHOUT_LM_EVAL = "import sys; sys.modules['lm_eval'] = None\nfrom composer_automl.cli import main; main(sys.argv[1:])"
"""Runs the CLI in a process where lm-eval cannot be imported (the `[eval]` extra missing)."""


def test_without_the_eval_extra_tasks_is_one_error_naming_tasks_and_the_extra(setup, tmp_path):
    root, hybrid, _, data = setup
    done = subprocess.run([sys.executable, "-c", WITHOUT_LM_EVAL, "evaluate", f"models=[{hybrid}]",
                           "efficiency.latency=false", f"out={tmp_path / 'a'}"], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: tasks=['py_cloze'] needs lm-evaluation-harness: pip install 'composer-automl[eval]' "
        "(or tasks=[] for held-out loss and efficiency only)"], done.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_without_the_eval_extra_held_out_loss_and_efficiency_still_run(setup, tmp_path):
    root, hybrid, _, data = setup
    done = subprocess.run([sys.executable, "-c", WITHOUT_LM_EVAL, "evaluate", f"models=[{hybrid}]", "tasks=[]",
                           f"data.path={data}", "efficiency.latency=false", f"out={tmp_path / 'b'}"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["name"] for r in json.loads((tmp_path / "b" / "report.json").read_text())["rows"]}
    assert {"bits_per_byte", "params", "kv_cache_bytes"} <= rows and not any("/" in r for r in rows)


def test_an_export_without_tokenizer_record_gets_the_re_export_hint(tmp_path, capsys):
    """A folder exported before exports recorded their tokenizer: one error with the command that fixes it."""
    bare, _ = bare_export(tmp_path / "old")
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main([f"models=[{bare}]", "tasks=[]", f"out={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1
    assert f"models[0]: {bare} records no tokenizer" in err and f"export ckpt={bare} out=NEW_FOLDER tokenizer=byte" in err

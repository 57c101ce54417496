"""The shipped GPU ladder (``fidelity=gpu``): a search through the same config fields on CPU, and on a GPU."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from composer_automl.engine.ladder import ladder_from_mapping, load_ladder
from composer_automl.engine.worker import Evaluator
from composer_automl.search.results import read_trials
from cli_runs import run_main


SEARCH = ("fidelity=gpu", "search.optimizer=hyperband", "search.n_iterations=1", "search.n_workers=1")
"""A one-bracket search of the GPU ladder: 3 trials at budget 1, 1 at budget 3."""


def corpus_overrides(tmp_path) -> list[str]:
    """The user's corpus (text files in ``tmp_path/corpus``), its cache and the run directory under ``tmp_path``."""
    return [f"search.run_dir={tmp_path / 'run'}", f"+fidelity.overrides.data.source={tmp_path / 'corpus'}",
            f"+fidelity.overrides.data.cache_dir={tmp_path / 'cache'}"]


def _search(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "composer_automl", "search", *SEARCH, *corpus_overrides(tmp_path),
                           "+fidelity.overrides.train_tokens=4096", "+fidelity.overrides.valid_tokens=1024", *overrides],
                          capture_output=True, text=True, timeout=240)


def test_gpu_ladder_rungs_train_on_the_users_corpus_through_the_same_fields_on_cpu(tmp_path):
    """Both rungs of ``fidelity=gpu`` with the corpus, device and token counts set once for the whole ladder (its
    ``overrides``, as ``fidelity.overrides.*`` sets them) train on the user's text files through a worker's
    Evaluator, on the CPU here; one corpus is prepared for both."""
    from composer_automl.config import load_yaml
    from composer_automl.paths import find_option

    (tmp_path / "corpus").mkdir()
    for i in range(40):
        (tmp_path / "corpus" / f"doc{i}.txt").write_text(f"document {i}: " + "the quick brown fox " * 200)
    overrides = {"data": {"source": str(tmp_path / "corpus"), "cache_dir": str(tmp_path / "cache")},
                 "accelerator": "cpu", "precision": "32-true", "compile": False, "train_tokens": 4096,
                 "valid_tokens": 1024}
    ladder = ladder_from_mapping("gpu", {**load_yaml(find_option("fidelity", "gpu")), "overrides": overrides})
    ladder.check_devices()
    ladder.prepare_inputs()
    evaluate = Evaluator(ladder_from_mapping("gpu", ladder.mapping), tmp_path / "out")  # what a worker gets
    for budget in ladder.budgets:
        result = evaluate((0, 0, 0), "AMMAAM", {}, budget, seed=0)
        assert result["info"]["rung"] in ("gpu-narrow", "gpu-search") and 0 < result["loss"] < 6
    assert len(list((tmp_path / "cache").iterdir())) == 1


@pytest.mark.slow  # the CLI end to end (a worker process, ~30 s); the rungs train in the default run above
@pytest.mark.timeout(300)
def test_gpu_ladder_searches_on_the_users_corpus_through_the_same_fields_on_cpu(tmp_path):
    """``fidelity=gpu`` with the corpus, device and token counts set once for the whole ladder
    (``fidelity.overrides.*``): every trial of both rungs trains on the user's text files, on the CPU here."""
    (tmp_path / "corpus").mkdir()
    for i in range(40):
        (tmp_path / "corpus" / f"doc{i}.txt").write_text(f"document {i}: " + "the quick brown fox " * 200)
    proc = _search(tmp_path, "+fidelity.overrides.accelerator=cpu", "+fidelity.overrides.precision=32-true",
                   "+fidelity.overrides.compile=false")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = read_trials(tmp_path / "run")
    assert {t.budget for t in trials} == {1.0, 3.0} and all(t.status == "ok" for t in trials)
    assert len(list((tmp_path / "cache").iterdir())) == 1  # one prepared corpus: the user's, for both rungs


def test_gpu_ladder_without_a_gpu_is_one_error_before_any_work(capsys, tmp_path, monkeypatch):
    """With local workers and no visible CUDA device, ``fidelity=gpu`` stops before the corpus is prepared or the
    run directory exists (the console script in this process)."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "doc.txt").write_text("text " * 1000)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine has no GPU, whatever it has
    code, _, err = run_main(capsys, "search", *SEARCH, *corpus_overrides(tmp_path))
    assert code == 2 and err.strip().splitlines() == [
        "error: fidelity rung gpu-narrow: accelerator=gpu but no CUDA device is visible; use accelerator=cpu"]
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.gpu
@pytest.mark.timeout(600)
def test_gpu_ladder_rungs_train_in_bf16_on_cuda_and_a_worker_compiles_its_layers_once(tmp_path):
    """Both rungs of the shipped GPU ladder (bf16, compiled layers) train on CUDA through a worker's evaluator,
    shortened to 64 steps; the second pattern compiles no new graph."""
    from torch._dynamo.utils import counters

    ladder = load_ladder("gpu")
    short = {**ladder.mapping, "rungs": [{**r, "rung_config": {**r["rung_config"], "train_tokens": 64 * 32 * 512,
                                                             "valid_tokens": 32 * 512}} for r in ladder.mapping["rungs"]]}
    evaluate = Evaluator(ladder_from_mapping("gpu", short), tmp_path)
    ladder.check_devices()
    graphs = []
    for i, pattern in enumerate(("AMAMAMAMAMAMAMAM", "AAMMMAMMAAMMMAMM")):
        for budget in (1.0, 3.0):
            result = evaluate((0, 0, i), pattern, {}, budget, seed=0)
            assert torch.isfinite(torch.tensor(result["loss"])) and result["loss"] < 5.6  # below ln(257): it learned
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[1] == graphs[0]

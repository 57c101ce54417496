"""Our models under lm-evaluation-harness: the local task by hand, against lm-eval's own `hf` model, rolling
log-likelihood against the held-out loss, KV-cached generate_until."""

from __future__ import annotations

import json

import pytest
import torch

from composer_automl.evaluate.config import HeldoutConfig
from composer_automl.evaluate.heldout import heldout_metrics, read_heldout
from composer_automl.evaluate.models import load_model, open_models, resolve_runtime
from exports import make_dataset, make_export

lm_eval = pytest.importorskip("lm_eval")
from composer_automl.evaluate.harness import TASKS_DIR, HarnessLM, check_tasks, run_task, task_manager  # noqa: E402

LIMIT = 8


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One seeded model exported twice: native, and hf (what lm-eval's `hf` model type loads)."""
    root = tmp_path_factory.mktemp("harness")
    native, model = make_export(root, "native", seed=5)
    hf, _ = make_export(root, "hf", fmt="hf", seed=5)
    return root, native, hf, model


def loaded(folder):
    [exp] = open_models([str(folder)])
    return load_model(folder.name, exp, resolve_runtime("cpu", "32-true"))


def items(n: int) -> list[dict]:
    return [json.loads(line) for line in (TASKS_DIR / "py_cloze.jsonl").read_text().splitlines()[:n]]


def test_local_task_accuracy_equals_argmax_of_summed_loglikelihoods(exported):
    """acc on the first 8 py_cloze items = the share whose label has the largest Σ log p(choice | context),
    computed here by hand with lm-eval's tokenization rule (the context's trailing whitespace moves to the
    choice) and its left truncation to max_seq_len."""
    _, native, _, model = exported
    [result] = run_task(loaded(native), "py_cloze", check_tasks(["py_cloze"]), batch_size=4, max_gen_toks=16,
                        num_fewshot=None, limit=LIMIT, seed=0)
    correct = 0
    for item in items(LIMIT):
        context = item["context"].rstrip()
        scores = []
        for choice in item["choices"]:
            tokens = list((item["context"] + choice).encode())
            n_cont = len(tokens) - len(context.encode())
            window = tokens[-(model.spec.max_seq_len + 1):]
            with torch.no_grad():
                logp = model(torch.tensor([window[:-1]])).log_softmax(-1)[0, -n_cont:]
            scores.append(logp.gather(-1, torch.tensor(window[-n_cont:])[:, None]).sum().item())
        correct += max(range(4), key=scores.__getitem__) == item["label"]
    assert result.n_samples == LIMIT
    assert result.metrics["acc"] == pytest.approx(correct / LIMIT)
    assert result.stderr["acc"] is not None and result.higher_is_better["acc"] is True


def test_equals_lm_evals_own_hf_model_on_the_hf_export(exported):
    """lm-eval's stock `hf` model type on the hf export (trust_remote_code, fp32) and ours on the same
    folder: the same per-choice log-likelihoods, accuracies and rolling log-likelihood of a text."""
    _, _, hf, _ = exported
    from lm_eval.models.huggingface import HFLM

    common = dict(tasks=["py_cloze"], task_manager=task_manager(["py_cloze"]), limit=LIMIT, log_samples=True,
                  random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)

    hf_lm = HFLM(pretrained=str(hf), trust_remote_code=True, dtype="float32", device="cpu", batch_size=4)
    theirs = lm_eval.simple_evaluate(model=hf_lm, **common)
    ours = lm_eval.simple_evaluate(model="composer-automl", model_args={"pretrained": str(hf)}, **common)

    def loglikelihoods(out):
        return [r[0] for s in out["samples"]["py_cloze"] for r in s["filtered_resps"]]

    assert loglikelihoods(ours) == pytest.approx(loglikelihoods(theirs), abs=1e-4)
    for metric in ("acc,none", "acc_norm,none"):
        assert ours["results"]["py_cloze"][metric] == theirs["results"]["py_cloze"][metric]

    from lm_eval.api.instance import Instance

    text = "def f(x):\n    return x * 2\n" * 6  # 162 bytes: three windows of 64
    request = [Instance("loglikelihood_rolling", {}, (text,), 0)]
    assert HarnessLM(str(hf), batch_size=2).loglikelihood_rolling(request)[0] == \
        pytest.approx(hf_lm.loglikelihood_rolling(request)[0], abs=1e-3)


def test_loglikelihood_rolling_equals_the_held_out_loss_on_the_same_text(exported, tmp_path):
    """Rolling log-likelihood of each held-out document's text sums to -(held-out loss × tokens)."""
    _, native, _, _ = exported
    text = read_heldout(HeldoutConfig(path=str(make_dataset(tmp_path))))
    model = loaded(native)
    from lm_eval.api.instance import Instance

    requests = [Instance("loglikelihood_rolling", {}, (t.decode(),), i) for i, t in enumerate(text.texts)]
    rolling = HarnessLM(model, batch_size=3).loglikelihood_rolling(requests)
    metrics = heldout_metrics(model, text, batch_size=5)
    assert -sum(rolling) == pytest.approx(metrics["loss"] * metrics["tokens"], rel=1e-5)


def test_generate_until_is_greedy_kv_cached_decoding_cut_at_the_stop_sequence(exported):
    """Each continuation is HybridLM.generate's greedy one (KV cache), cut before the first stop sequence;
    a batch of equal-length prompts gives what each prompt gives alone."""
    from lm_eval.api.instance import Instance

    _, native, _, model = exported
    prompts = ["def f(x):", "import os", "class A:\n", "x = 1"]
    requests = [Instance("generate_until", {}, (p, {"until": ["\n\n"], "max_gen_toks": 12, "do_sample": False}), i)
                for i, p in enumerate(prompts)]
    batched = HarnessLM(loaded(native), batch_size=4).generate_until(requests)
    alone = HarnessLM(loaded(native), batch_size=1).generate_until(requests)
    assert batched == alone
    for prompt, text in zip(prompts, batched):
        ids = torch.tensor([list(prompt.encode())])
        new = model.generate(ids, 12, temperature=0.0, use_cache=False)[0, ids.shape[1]:].tolist()
        new = new[: new.index(256)] if 256 in new else new
        expected = bytes(t for t in new if t < 256).decode("utf-8", errors="replace").split("\n\n")[0]
        assert text == expected

"""Continuation scoring and rolling windows: batching never changes a score; the windows are lm-eval's."""

from __future__ import annotations

import pytest
import torch

from composer_automl.evaluate.scoring import rolling_windows, score, text_loglikelihood
from composer_automl.model import HybridLM
from exports import SPEC


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HybridLM(SPEC).eval()


def by_hand(model: HybridLM, context: list[int], continuation: list[int]) -> float:
    """Sum of log p(continuation | context), one unbatched forward pass over the last max_seq_len inputs."""
    tokens = (context + continuation)[-(SPEC.max_seq_len + 1):]
    with torch.no_grad():
        logp = model(torch.tensor([tokens[:-1]])).log_softmax(-1)[0]  # (T, V)
    targets = torch.tensor(tokens[1:])
    return logp[-len(continuation):].gather(-1, targets[-len(continuation):, None]).sum().item()


def test_batched_scores_equal_one_request_at_a_time_including_truncated_contexts(model):
    """Right-padded batches of requests of mixed lengths (one longer than max_seq_len, truncated on the left)
    give each request the log-likelihood of its own unpadded forward pass; greedy flags follow the argmax."""
    g = torch.Generator().manual_seed(1)
    requests = [(torch.randint(0, 257, (n,), generator=g).tolist(), torch.randint(0, 257, (k,), generator=g).tolist())
                for n, k in [(1, 3), (10, 1), (90, 5), (30, 30), (5, 2), (63, 1)]]
    results = score(model, requests, SPEC.max_seq_len, batch_size=4)
    for (context, continuation), (logprob, greedy) in zip(requests, results):
        assert logprob == pytest.approx(by_hand(model, context, continuation), abs=1e-4)
    prompt = [5, 6, 7]
    argmax = model(torch.tensor([prompt])).argmax(-1)[0, -1].item()
    assert score(model, [(prompt, [argmax])], SPEC.max_seq_len, 1)[0][1] is True
    assert score(model, [(prompt, [(argmax + 1) % 257])], SPEC.max_seq_len, 1)[0][1] is False


@pytest.mark.parametrize("length", [1, 5, 63, 64, 65, 128, 200])
def test_rolling_windows_are_lm_evals(length):
    """The windows equal lm-eval's get_rolling_token_windows(context_len=1) + make_disjoint_window (the
    adapter's contract with lm-eval's loglikelihood_rolling), and predict every token exactly once."""
    utils = pytest.importorskip("lm_eval.utils")
    tokens = list(range(1000, 1000 + length))
    ours = rolling_windows(tokens, prefix=7, max_len=64)
    theirs = [utils.make_disjoint_window(w) for w in utils.get_rolling_token_windows(tokens, 7, 64, 1)]
    assert [(list(c), list(p)) for c, p in theirs] == ours
    assert [t for _, predicted in ours for t in predicted] == tokens


def test_text_loglikelihood_of_a_long_text_is_the_sum_of_its_windows(model):
    """A 150-token text (three windows at max_seq_len 64) scores as the sum over its windows, each by hand."""
    tokens = torch.randint(0, 256, (150,), generator=torch.Generator().manual_seed(2)).tolist()
    [total] = text_loglikelihood(model, [tokens], prefix=256, max_len=64, batch_size=2)
    windows = rolling_windows(tokens, 256, 64)
    assert len(windows) == 3
    assert total == pytest.approx(sum(by_hand(model, c, p) for c, p in windows), abs=1e-3)

"""Log-likelihood of continuations: the one scoring routine behind held-out loss and every lm-eval request.

A request is ``(context, continuation)`` token lists. The model reads
``(context + continuation)[-(L+1):][:-1]`` (L = its ``max_seq_len``: longer contexts lose their
oldest tokens) and the log-probabilities of the continuation's tokens are summed — lm-eval's
``hf`` model type does exactly this. Requests are sorted longest first and right-padded into
batches (a causal model's positions never see the padding after them).

A whole text is scored with :func:`rolling_windows`: lm-eval's ``loglikelihood_rolling`` windows
(``get_rolling_token_windows(context_len=1)`` + ``make_disjoint_window``), written here so that
held-out loss runs without lm-eval; a test checks they equal lm-eval's.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

Request = tuple[Sequence[int], Sequence[int]]
"""(context tokens, continuation tokens); the context is never empty."""


def rolling_windows(tokens: Sequence[int], prefix: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """Requests that predict every token of ``tokens`` exactly once, ``prefix`` (the EOD) first.

    The first window predicts up to ``max_len`` tokens after the prefix; each later one the next
    ``max_len`` tokens from the single token before them; the last, shorter one reads as much
    earlier text as fits (its input is ``max_len`` tokens long).
    """
    tokens = list(tokens)
    if not tokens:
        return []
    first = min(max_len, len(tokens))
    windows = [([prefix], tokens[:first])]
    done = first
    while done < len(tokens):
        n = min(len(tokens) - done, max_len)
        end = done + n
        windows.append((tokens[end - max_len - 1 : end - n], tokens[end - n : end]))
        done = end
    return windows


@torch.inference_mode()
def score(logits_fn: Callable[[torch.Tensor], torch.Tensor], requests: Sequence[Request], max_len: int,
          batch_size: int, progress: Callable[[int], None] | None = None) -> list[tuple[float, bool]]:
    """``(summed log-probability, whether greedy decoding gives the continuation)`` per request, in order.

    ``logits_fn`` maps token ids (B, T) to logits (B, T, V); ``progress(n)`` is told of each finished batch.
    """
    results: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
    order = sorted(range(len(requests)), key=lambda i: -(len(requests[i][0]) + len(requests[i][1])))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        inputs = []
        for i in chunk:
            context, continuation = requests[i]
            if not context or not continuation or len(continuation) > max_len:
                raise ValueError(f"request {i}: need a context and a continuation of 1..{max_len} tokens")
            inputs.append((list(context) + list(continuation))[-(max_len + 1) :][:-1])
        batch = torch.zeros(len(chunk), max(len(x) for x in inputs), dtype=torch.long)  # (B, T), right-padded
        for row, x in enumerate(inputs):
            batch[row, : len(x)] = torch.as_tensor(x)
        logits = logits_fn(batch)  # (B, T, V)
        for row, i in enumerate(chunk):
            continuation = torch.as_tensor(list(requests[i][1]), device=logits.device)
            end = len(inputs[row])
            logp = logits[row, end - len(continuation) : end].float().log_softmax(-1)  # (n, V)
            total = logp.gather(-1, continuation[:, None]).sum().item()
            results[i] = (total, bool((logp.argmax(-1) == continuation).all()))
        if progress is not None:
            progress(len(chunk))
    return results


def text_loglikelihood(logits_fn: Callable[[torch.Tensor], torch.Tensor], documents: Sequence[Sequence[int]],
                       prefix: int, max_len: int, batch_size: int,
                       progress: Callable[[int], None] | None = None) -> list[float]:
    """Summed log-probability of each document's every token (rolling windows; empty documents give 0)."""
    requests, owner = [], []
    for d, tokens in enumerate(documents):
        for window in rolling_windows(tokens, prefix, max_len):
            requests.append(window)
            owner.append(d)
    totals = [0.0] * len(documents)
    for d, (logprob, _) in zip(owner, score(logits_fn, requests, max_len, batch_size, progress)):
        totals[d] += logprob
    return totals

"""The TP=2 megatron model computes the single-device HybridLM's loss and gradients."""

from __future__ import annotations

import pytest
import torch

from composer_automl.lightning_module import IGNORE_INDEX, next_token_loss
from composer_automl.model import HybridLM
from composer_automl.presets import get_preset
from tp_world import run_world

SPEC = get_preset("tiny").replace(pattern="AMMAAM", max_seq_len=32)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, SPEC.vocab_size, (2, 17), generator=gen)
    inputs, targets = tokens[:, :-1], tokens[:, 1:].clone()
    targets[0, :3] = IGNORE_INDEX  # some unscored positions
    return inputs, targets


def _reference(spec) -> tuple[dict, float, dict]:
    torch.manual_seed(0)
    model = HybridLM(spec)
    inputs, targets = _batch()
    loss = next_token_loss(model(inputs), targets)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return model.state_dict(), loss.item(), grads


def _tp_worker(rank: int, world: int, cases: list) -> list[tuple[float, dict, dict]]:
    from composer_automl.parallel import build_parallel_model, gather_to_hybrid, load_hybrid_weights
    from composer_automl.parallel.state import destroy_model_parallel, init_model_parallel
    from composer_automl.train.module import masked_mean_loss

    init_model_parallel(tp=world)
    out = []
    for spec, weights in cases:
        model = build_parallel_model(spec, tp=world)
        load_hybrid_weights(model, weights, spec)
        inputs, targets = _batch()
        loss = masked_mean_loss(model, inputs, targets)
        loss.backward()
        grads = gather_to_hybrid({n: p.grad for n, p in model.named_parameters()}, spec)
        out.append((loss.item(), grads, gather_to_hybrid(model.state_dict(), spec)))
    destroy_model_parallel()
    return out


@pytest.mark.timeout(150)
def test_tp2_loss_and_gradients_match_single_device():
    """Same weights and batch: TP=2 loss equals HybridLM's (fp32 tolerance) on both ranks, the
    gathered gradients equal HybridLM's, and the weights map back unchanged."""
    specs = (SPEC, SPEC.replace(tie_embeddings=False))
    references = [_reference(spec) for spec in specs]
    per_rank = run_world(_tp_worker, 2, [(spec, ref[0]) for spec, ref in zip(specs, references)])
    for case, (weights, ref_loss, ref_grads) in enumerate(references):
        for loss, grads, round_trip in (results[case] for results in per_rank):
            assert abs(loss - ref_loss) < 1e-5, (loss, ref_loss)
            assert grads.keys() == ref_grads.keys()
            for name, grad in ref_grads.items():
                torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
            for name, weight in weights.items():
                assert torch.equal(round_trip[name], weight), name

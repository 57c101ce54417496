"""N_0 / N_c merging on hand-made top sets."""

from __future__ import annotations

import pytest

from composer_automl.aggregate.vote import vote_n0, vote_nc
from composer_automl.patterns import Pattern


def P(*texts):
    return [Pattern.parse(t) for t in texts]


def test_n0_majority_per_layer():
    """N_0 picks the most common kind at each layer independently and reports its shares."""
    vote = vote_n0(P("AMM", "AMA", "MMA", "AAA"))
    assert str(vote.pattern) == "AMA"
    assert vote.shares[0] == {"A": 0.75, "M": 0.25}
    assert vote.shares[1] == {"A": 0.25, "M": 0.75}
    assert vote.voters == (4, 4, 4) and vote.context == (0, 0, 0)


def test_ties_go_to_the_best_ranked_member():
    """A 1:1 tie takes the kind of the best-ranked member holding a tied kind; order decides."""
    assert str(vote_n0(P("AM", "MA")).pattern) == "AM"
    assert str(vote_n0(P("MA", "AM")).pattern) == "MA"
    # 2:2 tie at layer 0 among four members; the best member has M there
    assert str(vote_n0(P("MA", "AA", "AM", "MM")).pattern)[0] == "M"


def test_n0_and_nc_differ():
    """Independent votes give MA, which only one member supports; N_1 follows the M-prefix members to MM."""
    ranked = P("AA", "AA", "MM", "MM", "MA")
    assert str(vote_n0(ranked).pattern) == "MA"
    nc = vote_nc(ranked, 1)
    assert str(nc.pattern) == "MM"
    assert nc.voters == (5, 3)  # layer 2: only members starting with M vote
    assert nc.shares[1] == {"A": pytest.approx(1 / 3), "M": pytest.approx(2 / 3)}
    assert nc.context == (0, 1)


def test_nc_voters_always_share_the_consensus_context():
    """On random top sets, every N_2 voter matches the consensus's previous two layers, and some always do."""
    import random

    rng = random.Random(0)
    for _ in range(200):
        ranked = P(*("".join(rng.choice("AM") for _ in range(8)) for _ in range(rng.randint(1, 7))))
        vote = vote_nc(ranked, 2)
        chosen = vote.pattern.layers
        for layer in range(8):
            width = min(2, layer)
            matching = [p for p in ranked if p.layers[layer - width:layer] == chosen[layer - width:layer]]
            assert vote.voters[layer] == len(matching) >= 1
            assert vote.context[layer] == width
            assert chosen[layer] in {p[layer] for p in matching}


def test_nc_differs_by_context_length():
    """A longer context changes the consensus: at layer 3 N_1 counts AMA, MMA (A) vs AMM; N_2 only AM* (tie → AMM)."""
    ranked = P("AMM", "AAM", "AAA", "AMA", "MAA", "MMA")
    assert str(vote_nc(ranked, 1).pattern) == "AMA"
    assert str(vote_nc(ranked, 2).pattern) == "AMM"
    assert vote_nc(ranked, 2).voters == (6, 4, 2)


def test_nc_with_context_zero_equals_n0():
    """N_c with c=0 is N_0."""
    ranked = P("AAMMAM", "AMAMMM", "MMAAMA", "AAMAMM")
    assert vote_nc(ranked, 0) == vote_n0(ranked)


def test_rejects_empty_and_mixed_lengths():
    """Voting needs at least one member and equal lengths."""
    with pytest.raises(ValueError, match="empty"):
        vote_n0([])
    with pytest.raises(ValueError, match="same number of layers"):
        vote_n0(P("AM", "AMM"))

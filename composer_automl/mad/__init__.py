"""MAD synthetic tasks (Poli et al. 2024) as a fidelity rung: generators, protocol, scoring, evaluation."""

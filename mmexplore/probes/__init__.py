"""Compositional probes: does the model read word order, or a bag of words? (ARO, NegCLIP)

- :func:`perturb_caption` — perturbed captions of any text: swapped attributes, swapped relation
  order, shuffled words, dropped words, negation (no-op perturbations are dropped);
- :func:`score_probes` — the image's score with the caption and each perturbation, for the model
  and for a bag-of-words baseline (mean of single-word embeddings);
- :func:`evaluate_compositional` / :func:`evaluate_pairs` — accuracy per perturbation kind;
  :func:`compare_compositional` — several models side by side.
"""

from mmexplore.probes.evaluate import (
    ARO_NOTE,
    ARO_REFERENCE,
    compare_compositional,
    evaluate_compositional,
    evaluate_pairs,
)
from mmexplore.probes.perturb import ORDER_KINDS, PERTURBATION_KINDS, Perturbation, perturb_caption
from mmexplore.probes.scoring import ProbeResult, accuracy_by_kind, bag_of_words_embeddings, score_probes

__all__ = [
    "ARO_NOTE",
    "ARO_REFERENCE",
    "ORDER_KINDS",
    "PERTURBATION_KINDS",
    "Perturbation",
    "ProbeResult",
    "accuracy_by_kind",
    "bag_of_words_embeddings",
    "compare_compositional",
    "evaluate_compositional",
    "evaluate_pairs",
    "perturb_caption",
    "score_probes",
]

"""Robustness lab: corruptions, typographic attacks, backdoor poisoning and the CleanCLIP defence.

- :data:`CORRUPTIONS` / :func:`corrupt` — the corruption registry (name → config + function(image, strength));
- :mod:`~mmexplore.robustness.typographic` — words written into images, attack cases, text-in-image training;
- :mod:`~mmexplore.robustness.poison` — the trigger, the poisoned data stream, attack success rate;
- :mod:`~mmexplore.robustness.cleanclip` — CleanCLIP's unimodal self-supervised objectives.

Importing this package does not import torch.
"""

from mmexplore.robustness.corruptions import CORRUPTIONS, DEFAULT_STRENGTHS, Corruption, check_corruption, corrupt

__all__ = ["CORRUPTIONS", "DEFAULT_STRENGTHS", "Corruption", "check_corruption", "corrupt"]

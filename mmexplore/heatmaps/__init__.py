"""Per-word heatmaps: where in the image does each word of a caption point? (docs/design.md §5)

>>> from mmexplore.heatmaps import METHODS
>>> METHODS
('attention', 'relevancy', 'gradcam')

Entry points: :func:`list_methods` / :func:`get_method` (the registry of methods),
:func:`compute_heatmaps` (any registered method, batched), :class:`HeatmapResult` (maps at patch
resolution, upsampling, peaks, JSON), :func:`align_words` (BPE pieces → words), :func:`overlay` /
:func:`overlay_grid` (PNG rendering) and :func:`pointing_game` (the measured quality). Importing this
package does not import torch.
"""

from __future__ import annotations

from mmexplore.heatmaps.methods import (
    METHODS,
    WORD_FEATURES,
    HeatmapMethod,
    check_method,
    compute_heatmaps,
    get_method,
    list_methods,
    word_patch_matrix,
)
from mmexplore.heatmaps.pointing import pointing_game, pointing_scenes
from mmexplore.heatmaps.render import COLORMAPS, colorbar_image, overlay, overlay_grid
from mmexplore.heatmaps.result import HeatmapResult, crop_box, upsample
from mmexplore.heatmaps.words import WordAlignment, align_words, find_phrase

__all__ = [
    "COLORMAPS",
    "METHODS",
    "WORD_FEATURES",
    "HeatmapMethod",
    "HeatmapResult",
    "WordAlignment",
    "align_words",
    "check_method",
    "colorbar_image",
    "compute_heatmaps",
    "crop_box",
    "find_phrase",
    "get_method",
    "list_methods",
    "overlay",
    "overlay_grid",
    "pointing_game",
    "pointing_scenes",
    "upsample",
    "word_patch_matrix",
]

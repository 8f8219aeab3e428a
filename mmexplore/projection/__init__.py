"""Joint embedding space: projections (UMAP, PCA, t-SNE), the modality gap, and CCA (docs/design.md §6).

No Streamlit here and no heavy imports at import time (umap loads on first use).
"""

from mmexplore.projection.cca import CCA, CCARetrieval, cca_retrieval, min_pairs_needed
from mmexplore.projection.gap import (
    GapReport,
    center_modalities,
    gap_report,
    gap_vector,
    modality_gap,
    pair_indices,
    shift_along_gap,
)
from mmexplore.projection.joint import JointProjection, density_grid, display_sample, project_joint
from mmexplore.projection.methods import get_method, list_methods, make_config
from mmexplore.projection.projector import Projector

__all__ = [
    "CCA",
    "CCARetrieval",
    "GapReport",
    "JointProjection",
    "Projector",
    "cca_retrieval",
    "center_modalities",
    "density_grid",
    "display_sample",
    "gap_report",
    "gap_vector",
    "get_method",
    "list_methods",
    "make_config",
    "min_pairs_needed",
    "modality_gap",
    "pair_indices",
    "project_joint",
    "shift_along_gap",
]

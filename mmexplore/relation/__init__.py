"""Semantic image–text relations (Otto et al. 2020): CMI, SC and STAT estimators and the eight-class label.

>>> from mmexplore.relation import label_for
>>> label_for(0, 1, "0")
'Interdependent'
"""

from mmexplore.relation.api import RelationResult, explain, relate
from mmexplore.relation.calibration import Calibration, calibrate, calibration_path, load_calibration
from mmexplore.relation.chunker import ConceptPhrase, ParsedText, RelationMention, parse_text
from mmexplore.relation.estimators import CMIEstimator, RelationClassifier, SCEstimator, STATEstimator
from mmexplore.relation.taxonomy import CLASSES, COMPONENTS, TABLE, USE_CASES, class_probabilities, label_for

__all__ = [
    "CLASSES", "COMPONENTS", "TABLE", "USE_CASES", "CMIEstimator", "Calibration", "ConceptPhrase", "ParsedText",
    "RelationClassifier", "RelationMention", "RelationResult", "SCEstimator", "STATEstimator", "calibrate",
    "calibration_path", "class_probabilities", "explain", "label_for", "load_calibration", "parse_text", "relate",
]

"""mmexplore: explore how images and text connect inside CLIP-style joint embedding models.

The package is importable without torch or Streamlit; heavy modules load on first use.

>>> import mmexplore
>>> mmexplore.__version__
'0.1.0'
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

"""The app's pages in one table: file, title, icon, URL path and navigation section.

``app.py`` builds ``st.navigation`` from :data:`PAGES`; the tests (AppTest and the browser test)
read the same table, so a page is added in one place (see docs/CONTRIBUTING.md).

Pages live in ``mmexplore_app/pages/``, not in a ``pages/`` folder next to ``app.py``: such a folder
switches Streamlit into its legacy multipage mode (a "Page not found" toast on a first deep link, and
a page whose URL slug equals its file name run without the router).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parent / "pages"


@dataclass(frozen=True)
class PageSpec:
    """One page of the app.

    ``file`` is the page's file name in ``mmexplore_app/pages/``; ``url_path`` the slug of its deep
    link (``http://host/<url_path>``); ``section`` the navigation group it is listed under.
    """

    file: str
    title: str
    icon: str
    url_path: str
    section: str
    default: bool = False

    @property
    def stem(self) -> str:
        """The file name without ``.py`` (``"joint_space"``)."""
        return Path(self.file).stem

    @property
    def path(self) -> Path:
        """Absolute path of the page's script."""
        return PAGES_DIR / self.file

    @property
    def app_relative(self) -> str:
        """Path relative to ``app.py`` (what ``AppTest.switch_page`` and ``st.switch_page`` take)."""
        return f"mmexplore_app/pages/{self.file}"


# Deep links are part of the interface: keep a page's url_path when its file or title changes.
PAGES: tuple[PageSpec, ...] = (
    PageSpec("home.py", "Home & data", ":material/home:", "start", "Start", default=True),
    PageSpec("similarity.py", "Similarity", ":material/grid_on:", "similarity-matrix", "Explore"),
    PageSpec("heatmaps.py", "Heatmaps", ":material/local_fire_department:", "word-heatmaps", "Explore"),
    PageSpec("joint_space.py", "Joint space", ":material/scatter_plot:", "joint-space", "Explore"),
    PageSpec("cca.py", "CCA", ":material/join_inner:", "canonical-correlation", "Explore"),
    PageSpec("relation.py", "Relation", ":material/link:", "semantic-relation", "Meaning & search"),
    PageSpec("search.py", "Search", ":material/search:", "image-text-search", "Meaning & search"),
    PageSpec("probes.py", "Probes", ":material/science:", "model-probes", "Meaning & search"),
    PageSpec("train.py", "Train", ":material/model_training:", "training-lab", "Learn"),
    PageSpec("robustness.py", "Robustness", ":material/shield:", "robustness-lab", "Stress tests"),
)


def page(stem: str) -> PageSpec:
    """The page whose file stem is ``stem`` (``"similarity"``); KeyError names the known stems."""
    for spec in PAGES:
        if spec.stem == stem:
            return spec
    raise KeyError(f"no page {stem!r}; known: {', '.join(p.stem for p in PAGES)}")


def st_navigation_pages() -> dict[str, list]:
    """``{section: [st.Page, ...]}`` in table order, for ``st.navigation``."""
    import streamlit as st

    sections: dict[str, list] = {}
    for spec in PAGES:
        sections.setdefault(spec.section, []).append(
            st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path, default=spec.default)
        )
    return sections

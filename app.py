"""mmexplore web app: the router. Run with ``make run`` (``streamlit run app.py``).

Sets up the page, the shared session state and sidebar, then hands over to the page chosen in the
navigation. Pages live in ``pages/`` and stay thin: gather input, call the core, draw.
"""

from __future__ import annotations

import streamlit as st

from mmexplore_app import widgets
from mmexplore_app.sidebar import render_banner, render_sidebar

st.set_page_config(page_title="mmexplore", page_icon="🔎", layout="wide")
widgets.init_state()

PAGES = {
    "Start": [st.Page("pages/home.py", title="Home & data", icon="🏠", default=True)],
    "Explore": [
        st.Page("pages/similarity.py", title="Similarity", icon="🟦"),
        st.Page("pages/heatmaps.py", title="Heatmaps", icon="🔥"),
        st.Page("pages/joint_space.py", title="Joint space", icon="🌐"),
        st.Page("pages/cca.py", title="CCA", icon="📐"),
    ],
    "Meaning & search": [
        st.Page("pages/relation.py", title="Relation", icon="🔗"),
        st.Page("pages/search.py", title="Search", icon="🔍"),
        st.Page("pages/probes.py", title="Probes", icon="🧪"),
    ],
}

pg = st.navigation(PAGES)
render_sidebar()
render_banner()
pg.run()

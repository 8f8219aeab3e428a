"""mmexplore web app: the router. Run with ``make run`` (``streamlit run app.py``).

Sets up the page, the shared session state and sidebar, then hands over to the page chosen in the
navigation. Pages live in ``pages/`` and stay thin: gather input, call the core, draw.
"""

from __future__ import annotations

import streamlit as st

from mmexplore_app import widgets
from mmexplore_app.sidebar import render_banner, render_sidebar

st.set_page_config(page_title="mmexplore", page_icon=":material/join_inner:", layout="wide")
widgets.init_state()

# url_path values deliberately differ from the file names. Streamlit still runs a legacy
# "pages/ folder" shim on a process's first run (and on every AppTest run); a page whose URL slug
# equals its file name would then be run on its own, without this router (no sidebar, no state).
PAGES = {
    "Start": [st.Page("pages/home.py", title="Home & data", icon=":material/home:", url_path="start", default=True)],
    "Explore": [
        st.Page("pages/similarity.py", title="Similarity", icon=":material/grid_on:", url_path="similarity-matrix"),
        st.Page("pages/heatmaps.py", title="Heatmaps", icon=":material/local_fire_department:", url_path="word-heatmaps"),
        st.Page("pages/joint_space.py", title="Joint space", icon=":material/scatter_plot:", url_path="joint-space"),
        st.Page("pages/cca.py", title="CCA", icon=":material/join_inner:", url_path="canonical-correlation"),
    ],
    "Meaning & search": [
        st.Page("pages/relation.py", title="Relation", icon=":material/link:", url_path="semantic-relation"),
        st.Page("pages/search.py", title="Search", icon=":material/search:", url_path="image-text-search"),
        st.Page("pages/probes.py", title="Probes", icon=":material/science:", url_path="model-probes"),
    ],
}

pg = st.navigation(PAGES)
render_sidebar()
render_banner()
pg.run()

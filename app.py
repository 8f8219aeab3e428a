"""mmexplore web app: the router. Run with ``make run`` (``streamlit run app.py``).

Sets up the page, the shared session state and sidebar, then hands over to the page chosen in the
navigation. Pages live in ``mmexplore_app/pages/`` (listed in ``mmexplore_app/navigation.py``) and
stay thin: gather input, call the core, draw.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from mmexplore_app import widgets
from mmexplore_app.navigation import st_navigation_pages
from mmexplore_app.sidebar import render_banner, render_sidebar

# A local file: a ":material/…" icon is fetched from a font CDN by the browser, which fails offline.
FAVICON = Path(__file__).resolve().parent / "assets" / "favicon.png"
st.set_page_config(page_title="mmexplore", page_icon=str(FAVICON), layout="wide")
widgets.configure_server_log()
widgets.init_state()
widgets.start_warm_up()  # UMAP compiles in the background while the first pages are used

pg = st.navigation(st_navigation_pages())
render_sidebar()
render_banner()
pg.run()

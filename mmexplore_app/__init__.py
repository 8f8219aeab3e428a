"""The Streamlit side of mmexplore: shared session state and widgets used by ``app.py`` and ``mmexplore_app/pages/``.

Nothing in :mod:`mmexplore` imports this package; pages gather input, call the core, and draw.
"""

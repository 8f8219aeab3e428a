"""The Streamlit side of mmexplore: shared session state and widgets used by ``app.py`` and ``pages/``.

Nothing in :mod:`mmexplore` imports this package; pages gather input, call the core, and draw.
"""

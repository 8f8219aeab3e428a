"""The app's page scripts, run by ``st.navigation`` (listed in :mod:`mmexplore_app.navigation`)."""

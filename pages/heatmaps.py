"""Heatmaps page (placeholder until its feature lands)."""

import streamlit as st

st.title("Heatmaps")
st.info("Coming: this page is being built.")

"""Probes page (placeholder until its feature lands)."""

import streamlit as st

st.title("Probes")
st.info("Coming: this page is being built.")

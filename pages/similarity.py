"""Similarity page (placeholder until its feature lands)."""

import streamlit as st

st.title("Similarity")
st.info("Coming: this page is being built.")

"""Search page (placeholder until its feature lands)."""

import streamlit as st

st.title("Search")
st.info("Coming: this page is being built.")

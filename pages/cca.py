"""CCA page (placeholder until its feature lands)."""

import streamlit as st

st.title("CCA")
st.info("Coming: this page is being built.")

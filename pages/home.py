"""Home & data page (placeholder until its feature lands)."""

import streamlit as st

st.title("Home & data")
st.info("Coming: this page is being built.")

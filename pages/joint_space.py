"""Joint space page (placeholder until its feature lands)."""

import streamlit as st

st.title("Joint space")
st.info("Coming: this page is being built.")

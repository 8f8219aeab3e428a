"""Relation page (placeholder until its feature lands)."""

import streamlit as st

st.title("Relation")
st.info("Coming: this page is being built.")

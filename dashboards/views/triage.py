import streamlit as st

st.title("Operations triage")

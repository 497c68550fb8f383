import streamlit as st

st.title("Audit")

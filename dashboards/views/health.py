import streamlit as st

st.title("Rules and integrations")

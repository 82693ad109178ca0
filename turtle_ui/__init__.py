"""Streamlit helpers shared by the page scripts in pages/ (the engine never imports this)."""

"""TransferLab: the router. Page config, navigation over the pages, and the shared sidebar."""

import streamlit as st

from pages import _common

st.set_page_config(page_title="TransferLab", page_icon=":material/school:", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True),
        st.Page("pages/data.py", title="Data", icon=":material/photo_library:", url_path="data"),
        st.Page("pages/model.py", title="Model", icon=":material/tune:", url_path="model"),
        st.Page("pages/train.py", title="Train", icon=":material/monitoring:", url_path="train"),
        st.Page("pages/search.py", title="Search", icon=":material/manage_search:", url_path="search"),
        st.Page("pages/predictions.py", title="Predictions", icon=":material/fact_check:", url_path="predictions"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
        st.Page("pages/export.py", title="Export", icon=":material/download:", url_path="export"),
    ]
)

with st.sidebar:
    _common.guarded(lambda: _common.sidebar(_common.workspace()))

navigation.run()

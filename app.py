"""TURTLE Labels: bootstrap labels for a folder of images. Run with `streamlit run app.py`."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from turtle_core.names import markdown_text
from turtle_ui import fmt, session
from turtle_ui import jobs as jobs_ui

# A bundled file, not a material icon: Streamlit fetches those favicons from fonts.gstatic.com.
FAVICON = Path(__file__).parent / "assets" / "favicon.png"
st.set_page_config(page_title="TURTLE Labels", page_icon=str(FAVICON), layout="wide")
jobs_ui.mark_run_start()  # before anything this run starts: a job started by the run itself never counts
session.init_session()
jobs_ui.speed_probe()  # once per machine, while the user finds a folder: the first estimate needs it
session.palette_css()

PAGES = [
    st.Page(session.PROJECT_PAGE, title="Project", icon=":material/folder_open:", default=True),
    st.Page(session.DISCOVER_PAGE, title="Discover", icon=":material/travel_explore:"),
    st.Page(session.MAP_PAGE, title="Map", icon=":material/scatter_plot:"),
    st.Page(session.CLUSTERS_PAGE, title="Clusters", icon=":material/category:"),
    st.Page(session.EXPORT_PAGE, title="Export", icon=":material/output:"),
]
page = st.navigation(PAGES)


def sidebar() -> None:
    """Project summary, on every page."""
    with st.sidebar:
        st.markdown("### :material/pets: TURTLE Labels")
        project = session.current_project()
        if project is None:
            st.caption("No project open.")
            return
        st.markdown(f"**{markdown_text(project.folder.name)}**")
        st.caption(markdown_text(project.folder.parent))
        curation = project.curation
        if curation is None:
            scan = project.scan_result
            n_images = len(scan.images) if scan is not None else 0
            st.caption(f"{fmt.fmt_int(n_images)} images · no categories yet")
            return
        n_excluded = int((curation.assignments < 0).sum())
        st.caption(
            f"{fmt.fmt_int(curation.n_images)} images · {len(curation.cluster_ids())} clusters"
            + (f" · {fmt.fmt_int(n_excluded)} excluded" if n_excluded else "")
        )
        if curation.can_undo:
            st.caption(f"Last edit: {markdown_text(curation.history()[-1])}")


sidebar()
page.run()

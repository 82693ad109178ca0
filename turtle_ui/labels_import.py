"""Labels in, on the Project page: labels made elsewhere become checked images of the folder's curation.

Three sources, as the CLI's `import-labels` reads them: a `path,label` CSV, a Label Studio JSON export (image
classification) and an ImageFolder tree (`<label>/<image>`, a sorted subset, matched to the folder's images
by content). The import runs in the background (a folder without a discovery gets a quick one first) and is
one undoable edit; rows that cannot be used are listed with their row numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from turtle_core.ingest.labels import (
    LabelRows,
    LabelsFileError,
    read_image_folder_tree,
    read_label_studio,
    read_labels_csv,
)
from turtle_core.jobs import JobConflict
from turtle_core.names import markdown_text, unescape_name
from turtle_ui import jobs as jobs_ui
from turtle_ui import session

if TYPE_CHECKING:
    from turtle_core.operations.project import Project

JOB_KIND = "import"
SHOWN_PROBLEMS = 20


def read_upload(name: str, data: bytes) -> LabelRows:
    """A CSV or a Label Studio JSON export, told apart by its name (then by its first character)."""
    lowered = name.lower()
    if lowered.endswith(".json") or (not lowered.endswith(".csv") and data.lstrip()[:1] in (b"[", b"{")):
        return read_label_studio(data, name)
    return read_labels_csv(data, name)


def import_panel(project: Project) -> None:
    """The *Import labels* expander: pick a source, import in the background, report what was skipped."""
    job = jobs_ui.project_job(project, JOB_KIND)
    running = job is not None and job.running
    with st.expander("Import labels made elsewhere", expanded=running):
        st.caption(
            "The images these labels name become checked images with those labels as cluster names (one "
            "undoable edit; a folder without clusters gets a quick discovery first). Rows that cannot be used "
            "(an unknown path, an empty label, an image labelled twice, an excluded image) are listed and "
            "skipped."
        )
        upload = st.file_uploader(
            "A `path,label` CSV or a Label Studio JSON export",
            type=["csv", "json"],
            key="labels_upload",
            disabled=running,
        )
        tree = st.text_input(
            "…or an ImageFolder tree (one sub-folder per label)",
            placeholder="/path/to/sorted/images",
            key="labels_tree",
            disabled=running,
        )
        if st.button("Import labels", icon=":material/upload:", disabled=running, key="labels_import"):
            found = _read_source(upload, tree)
            if found is not None:
                _start(project, found)
        jobs_ui.job_panel(job, "Import labels")
        _news(job)


def _has_report(job) -> bool:
    return job is not None and job.state == "done" and st.session_state.get("labels_report") == job.id


def _read_source(upload, tree: str) -> LabelRows | None:
    """The rows of the chosen source, or None after saying why there are none."""
    try:
        if upload is not None:
            return read_upload(upload.name, upload.getvalue())
        if tree.strip():
            folder = unescape_name(tree.strip())
            if not session.folder_policy().permits(folder):
                st.error("This app may not read that folder.", icon=":material/block:")
                return None
            return read_image_folder_tree(Path(folder))
    except LabelsFileError as error:
        st.error(str(error), icon=":material/error:")
        return None
    st.warning("Choose a labels file or type an ImageFolder tree first.", icon=":material/info:")
    return None


def _start(project: Project, found: LabelRows) -> None:
    origin = session.tab_origin()
    try:
        jobs_ui.submit_job(
            project,
            JOB_KIND,
            lambda progress, cancel: project.import_labels(
                found, origin=origin, progress=progress, cancel=cancel
            ),
        )
    except JobConflict as error:
        st.warning(str(error))
        return
    st.rerun()


def _news(job) -> None:
    """What the last import did, in the session that started it (until another import)."""
    if jobs_ui.finished_news(job) and job.state == "done":
        st.session_state.edit_nonce += 1  # clusters changed: selections made before are void
        st.session_state.labels_report = job.id
    if job is None or job.state != "done" or st.session_state.get("labels_report") != job.id:
        return
    report = job.result
    st.success(report.message(), icon=":material/check_circle:")
    if report.problems:
        lines = [
            f"- {markdown_text(problem.where)}: {markdown_text(problem.reason)}"
            for problem in report.problems[:SHOWN_PROBLEMS]
        ]
        more = len(report.problems) - SHOWN_PROBLEMS
        st.markdown("\n".join(lines) + (f"\n- … and {more} more" if more > 0 else ""))

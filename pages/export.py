"""Export page: write the labeled dataset (ImageFolder tree + manifests) and download the manifest."""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from turtle_core.constants import EXCLUDED
from turtle_ui import fmt, session
from turtle_ui import jobs as jobs_ui
from turtle_ui.classifier_export import classifier_export

session.through_app()
st.title("Export")
st.caption("Write the labeled dataset to a new folder. Your original images are only read, never moved.")
session.show_flash()
project = session.require_project()
curation = session.require_curation(project)

from turtle_core.export.dataset import ALL_FORMATS, destination_problem  # noqa: E402
from turtle_core.export.marker import check_replaceable  # noqa: E402
from turtle_core.names import display_name, escape_name, markdown_text, unescape_name  # noqa: E402

FORMATS = {
    "imagefolder": "ImageFolder tree",
    "csv": "CSV manifest",
    "parquet": "Parquet manifest",
    "hf": "Hugging Face metadata.jsonl",
    "labelstudio": "Label Studio tasks",
}
MODES = {
    "copy": "Copy files",
    "hardlink": "Hard links (no extra space)",
    "symlink": "Symbolic links",
}

n_excluded = int((curation.assignments == EXCLUDED).sum())
cols = st.columns(3)
cols[0].metric("Images to export", fmt.fmt_int(curation.n_images - n_excluded))
cols[1].metric("Classes", len(curation.cluster_ids()))
cols[2].metric("Excluded", fmt.fmt_int(n_excluded), help="Listed in the manifests with no label; not copied.")

# Class folders take the cluster names: nudge before exporting folders called "Cluster 3".
unnamed = [
    curation.name_of(c) for c in curation.cluster_ids() if re.fullmatch(r"Cluster \d+", curation.name_of(c))
]
if unnamed:
    listed = ", ".join(f"'{name}'" for name in unnamed[:6]) + (", …" if len(unnamed) > 6 else "")
    st.info(
        f"{len(unnamed)} of {len(curation.cluster_ids())} classes still have their automatic names ({listed}): "
        "the exported folders and labels will be called that. Name them on the Clusters page first, "
        "or export as they are.",
        icon=":material/edit:",
    )
    st.page_link(session.CLUSTERS_PAGE, label="Name the clusters", icon=":material/category:")

job = jobs_ui.project_job(project, "export")
running = job is not None and job.running

with st.container(border=True):
    # Paths travel through the text box written with escape_name (a non-UTF-8 byte as \xNN).
    default_dest = escape_name(project.folder.parent / f"{project.folder.name}-labeled")
    dest = unescape_name(
        st.text_input(
            "Destination folder", value=default_dest, key=f"export_dest:{escape_name(project.folder)}"
        ).strip()
    )
    formats = st.pills(
        "Formats",
        [f for f in FORMATS if f in ALL_FORMATS],
        selection_mode="multi",
        default=list(ALL_FORMATS),
        format_func=FORMATS.get,
        key="export_formats",
        persist_state="session",
    )
    mode = st.radio(
        "Files",
        list(MODES),
        format_func=MODES.get,
        key="export_mode",
        horizontal=True,
        persist_state="session",
    )
    if mode == "hardlink":
        st.caption(
            "Hard links share storage with the originals: editing an exported file in place edits the original too."
        )

    target = Path(dest).expanduser() if dest else None
    policy = session.folder_policy()  # served to others: only inside the allowed folders
    # The engine's own refusal (the image folder, inside it, or a folder holding it), said as it is typed.
    refused = destination_problem(project.folder, target) if target is not None else None
    allowed = target is None or (refused is None and policy.permits(target))
    if refused is not None:
        st.error(markdown_text(refused), icon=":material/block:")
    elif not allowed:
        st.error(markdown_text(f"Cannot export there. {policy.explanation}"), icon=":material/block:")
    exists = allowed and target is not None and target.exists()
    exists = exists and (not target.is_dir() or any(target.iterdir()))
    overwrite = False
    just_made = (
        target is not None
        and job is not None
        and job.state == "done"
        and job.result is not None
        and Path(job.result.dest) == target.resolve()
    )
    # Only a folder carrying this app's export marker can be replaced; any other is never offered.
    check = check_replaceable(target) if exists and target.is_dir() else None
    if exists and not running:
        if check is None or not check.replaceable:
            reason = check.reason if check is not None else f"{target} exists and is not a folder."
            st.error(markdown_text(reason), icon=":material/block:")
        elif just_made:
            st.info(
                "This is the export you just made. To write it again, confirm below.", icon=":material/info:"
            )
        else:
            st.warning(
                f"{markdown_text(target)} already exists: a previous export made by this app.",
                icon=":material/warning:",
            )
        if check is not None and check.replaceable:
            overwrite = st.checkbox(
                "Replace it",
                key=f"export_overwrite:{job.id if job is not None else 0}",
            )
    ready = bool(dest) and bool(formats) and (not exists or overwrite) and not running and allowed
    if st.button("Export", type="primary", icon=":material/output:", disabled=not ready, key="export"):
        chosen, chosen_mode, replace, roots = list(formats), mode, overwrite, policy.read_roots
        jobs_ui.submit_job(
            project,
            "export",
            lambda progress, cancel: project.export(
                dest,
                mode=chosen_mode,
                formats=chosen,
                overwrite=replace,
                progress=progress,
                cancel=cancel,
                within=roots,
            ),
        )
        st.rerun()

jobs_ui.job_panel(job, "Export")

if job is not None and job.state == "done" and job.result is not None:
    report = job.result
    st.success(
        f"Exported {fmt.fmt_count(report.n_exported, 'image')} to {markdown_text(report.dest)}.",
        icon=":material/check_circle:",
    )
    rcols = st.columns(3)
    rcols[0].metric("Exported", fmt.fmt_int(report.n_exported))
    rcols[1].metric("Excluded", fmt.fmt_int(report.n_excluded))
    rcols[2].metric("Manifest files", fmt.fmt_int(len(report.files)))
    for warning in report.warnings:
        st.warning(markdown_text(warning))
    with st.expander("Class folders and files"):
        if report.label_folders:
            st.dataframe(
                [
                    {"label": display_name(label), "folder": display_name(folder)}
                    for label, folder in report.label_folders.items()
                ],
                hide_index=True,
                width="stretch",
            )
        st.code("\n".join(report.files), language="text")

st.download_button(
    "Download manifest (CSV)",
    data=lambda: project.manifest_frame().to_csv(index=False).encode("utf-8"),
    file_name=f"{display_name(project.folder.name)}-manifest.csv",
    mime="text/csv",
    icon=":material/download:",
    key="download_manifest",
)

classifier_export(project)

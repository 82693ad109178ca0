"""Project page: open an image folder (or the demo), review the scan, choose backbones."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from turtle_core.names import display_name, escape_name, markdown_text, unescape_name
from turtle_ui import curations, fmt, labels_import, session
from turtle_ui import jobs as jobs_ui

session.through_app()
st.title("Project")
st.caption(
    "Choose a folder of images. Nothing in it is ever modified: all work is kept in a separate workspace."
)
session.show_flash()


def _open(folder: str) -> None:
    from turtle_core.operations.project import ProjectError
    from turtle_ui.access import FolderNotAllowed

    if not folder.strip():
        st.error("Type the path of a folder of images.")
        return
    try:
        project = session.open_folder(folder)
    except (ProjectError, FolderNotAllowed) as error:
        st.error(markdown_text(error), icon=":material/block:")
        return
    if project.scan_result is None:
        _submit_scan(project)
    session.flash("success", f"Opened {project.folder}")
    st.rerun()


def _submit_scan(project) -> None:
    roots = session.read_roots()  # served to others: links out of the allowed folders are not followed
    jobs_ui.submit_job(
        project, "scan", lambda progress, cancel: project.scan(progress=progress, cancel=cancel, within=roots)
    )


def _demo() -> None:
    from turtle_core.ingest.demo import write_demo_folder

    per_class = int(os.environ.get("TURTLE_DEMO_PER_CLASS", "200"))
    with st.spinner(f"Writing {fmt.fmt_int(per_class * 10)} demo images…"):
        folder = write_demo_folder(per_class=per_class)
    _open(str(folder))


# ------------------------------------------------------------------------------------------ open
open_col, demo_col = st.columns([3, 2], gap="large")
with open_col, st.form("open-form", border=False):
    typed = st.text_input("Image folder", placeholder="/path/to/images", key="folder_input")
    if st.form_submit_button("Open folder", type="primary", icon=":material/folder_open:"):
        _open(unescape_name(typed))  # a non-UTF-8 byte can be typed as \xNN, as our CSV files write it
with demo_col, st.container(border=True):
    st.markdown("**New here? Try the demo**")
    st.caption("Animal-MNIST: small images of 10 animal classes, written to a demo folder and opened.")
    if st.button("Try the demo", icon=":material/pets:", key="demo"):
        _demo()

from turtle_core.operations.project import Project  # noqa: E402 - after the page header, so it draws at once

policy = session.folder_policy()
if policy.allowed is not None:
    open_col.caption(markdown_text(policy.explanation))
recent = [f for f in Project.recent() if f != st.session_state.folder and policy.permits(f)]
if recent:
    with st.expander(f"Recent projects ({len(recent)})", expanded=st.session_state.folder is None):
        for i, folder in enumerate(recent[:8]):
            if st.button(
                markdown_text(folder), key=f"recent-{i}", type="tertiary", icon=":material/history:"
            ):
                _open(folder)

project = session.current_project()
if project is None:
    st.stop()


def _quality_counts(scan) -> None:
    from turtle_core.cleaning.quality import FLAG_TITLES
    from turtle_core.operations.cleaning import scan_quality

    flags = scan_quality(scan)
    counts = {flag: count for flag, count in flags.counts().items() if count}
    if not flags.measured.all():
        st.caption("Image quality was not measured in this scan: rescan to flag dark, blurry, … images.")
    elif not counts:
        st.caption(
            "Image quality: nothing to report (no dark, light, blurry, low-information, oddly shaped, "
            "odd-sized or grey images)."
        )
    else:
        cols = st.columns(len(counts))
        for col, (flag, count) in zip(cols, counts.items(), strict=True):
            col.metric(FLAG_TITLES[flag].capitalize(), fmt.fmt_int(count))
        st.caption(
            "Image-quality flags (cleanvision's definitions; blurry: edges spread over several pixels, "
            "whatever the contrast). Filter by them on the Clusters and Map pages; "
            "every export carries them as columns."
        )


# ------------------------------------------------------------------------------------------ scan
st.divider()
head, rescan_col = st.columns([4, 1], vertical_alignment="bottom")
head.subheader(f"Images in {markdown_text(project.folder.name)}")
scan_job = jobs_ui.project_job(project, "scan")
update_job = jobs_ui.project_job(project, "update")
scanning = any(job is not None and job.running for job in (scan_job, update_job))
if rescan_col.button(
    "Rescan",
    icon=":material/refresh:",
    disabled=scanning,
    help="Pick up added, changed or removed files; with a curation, label the new images with your categories",
):
    curations.start_rescan(project)
    st.rerun()
jobs_ui.job_panel(scan_job, "Scan")
curations.rescan_news(project)

scan = project.scan_result
if scan is not None and not scanning:
    summary = scan.summary()
    cols = st.columns(4)
    cols[0].metric("Usable images", fmt.fmt_int(summary["images"]))
    cols[1].metric("Skipped files", fmt.fmt_int(summary["skipped"]))
    cols[2].metric("Duplicate copies", fmt.fmt_int(summary["duplicate_files"]))
    cols[3].metric(
        "Folder labels",
        summary["folder_labels"] or "none",
        help="Images sorted in class sub-folders: used only to score the discovery, never to train it.",
    )
    curations.count_note(project, scan)
    if summary["images"] == 0:
        st.warning(
            "No usable images were found in this folder. Supported: JPEG, PNG, WebP, BMP, TIFF, GIF.",
            icon=":material/hide_image:",
        )
    if summary["images"]:
        _quality_counts(scan)
    if scan.skipped:
        with st.expander(f"Skipped files ({len(scan.skipped)})"):
            frame = pd.DataFrame(
                [{"file": display_name(s.path), "reason": display_name(s.reason)} for s in scan.skipped]
            )
            st.dataframe(frame, hide_index=True, width="stretch")
    if scan.duplicates:
        with st.expander(f"Duplicate groups ({len(scan.duplicates)})"):
            st.caption("Files with identical content. All are kept; they will share one embedding.")
            frame = pd.DataFrame(
                [
                    {"group": i + 1, "files": len(group), "paths": ", ".join(map(display_name, group))}
                    for i, group in enumerate(scan.duplicates)
                ]
            )
            st.dataframe(frame, hide_index=True, width="stretch")

labels_import.import_panel(project)
curations.earlier_curations(project)

# ------------------------------------------------------------------------------------------ backbones
st.divider()
st.subheader("Backbones")
st.caption(
    "Foundation models that turn images into embeddings. TURTLE combines several; more is better but slower."
)

from turtle_core.embedding.backbones import BACKBONES, PRESETS  # noqa: E402

# This visitor's own choices (kept in the session): another visitor of the same folder never changes them.
choices = session.run_choices(project)
preset_names = [name for name in ("offline", "fast", "best") if name in PRESETS]
current_preset = next((p for p in preset_names if list(PRESETS[p]) == list(choices.backbones)), "custom")
preset = st.segmented_control(
    "Preset",
    [*preset_names, "custom"],
    default=current_preset,
    required=True,
    key=f"preset:{escape_name(project.folder)}",
    help="offline: ships with the app · fast: small models · best: the strongest models · custom: pick yourself",
)
if preset == "custom":
    chosen = st.multiselect(
        "Backbones",
        list(BACKBONES),
        default=list(choices.backbones),
        key=f"custom-backbones:{escape_name(project.folder)}",
    )
else:
    chosen = list(PRESETS[preset])
if chosen and list(chosen) != list(choices.backbones):
    choices.backbones = list(chosen)
    project.set_backbones(chosen)  # remembered as the folder's default for the next time it is opened
elif not chosen:
    st.warning("Choose at least one backbone.")

STATUS = {
    "present": ":green-badge[ready]",
    "downloadable": ":orange-badge[needs download]",
    "missing": ":red-badge[missing]",
}
for availability in project.availability(choices.backbones, choices.checkpoints):
    with st.container(border=True):
        name_col, status_col, detail_col = st.columns([2, 1, 5], vertical_alignment="center")
        name_col.markdown(f"**{markdown_text(availability.name)}**")
        status_col.markdown(STATUS.get(availability.status, availability.status))
        with detail_col:
            if availability.detail:
                st.caption(markdown_text(availability.detail))
            if availability.status != "present" or availability.name in choices.checkpoints:
                path = st.text_input(
                    "Local checkpoint file",
                    value=choices.checkpoints.get(availability.name, ""),
                    placeholder="/path/to/checkpoint (.pt, .bin or .safetensors)",
                    key=f"ckpt:{escape_name(project.folder)}:{availability.name}",
                )
                if not policy.permits_checkpoint(path):
                    # Loading a checkpoint runs code from it: only files (or local-dir: folders) inside
                    # the allowed folders.
                    st.error(markdown_text(f"Checkpoint refused. {policy.explanation}"))
                elif path.strip() != choices.checkpoints.get(availability.name, ""):
                    choices.checkpoints = {
                        name: value
                        for name, value in {**choices.checkpoints, availability.name: path.strip()}.items()
                        if value
                    }
                    project.set_backbones(choices.backbones, choices.checkpoints)
                    st.rerun()

from turtle_core.embedding.ray_embed import ray_installed  # noqa: E402

RAY_HELP = (
    "Embed the images on a Ray cluster (the folder must be at the same path on every node); "
    "the vectors land in this machine's embedding cache. `local` starts Ray on this machine."
)
if ray_installed() and policy.ray_addresses is None:
    address = st.text_input(
        "Ray cluster address",
        value=choices.ray_address or "",
        placeholder="empty: this machine · host:port · local",
        key=f"ray-address:{escape_name(project.folder)}",
        help=RAY_HELP,
    )
    choices.ray_address = address.strip() or None
elif ray_installed() and policy.ray_addresses:
    # Served to others: a visitor picks one of the clusters the owner listed, never types one.
    options = ["", *policy.ray_addresses]
    picked = st.selectbox(
        "Ray cluster",
        options,
        index=options.index(choices.ray_address) if choices.ray_address in options else 0,
        format_func=lambda address: address or "this machine",
        key=f"ray-address:{escape_name(project.folder)}",
        help=RAY_HELP,
    )
    choices.ray_address = picked or None
elif ray_installed():
    st.caption(markdown_text(policy.ray_explanation()))
    choices.ray_address = None

ready = all(a.status == "present" for a in project.availability(choices.backbones, choices.checkpoints))
if ready and scan is not None and scan.images:
    st.page_link(session.DISCOVER_PAGE, label="Next: discover categories", icon=":material/arrow_forward:")

"""Discover page: embed the images and let TURTLE find the categories, in the background."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from turtle_core.discovery.describe import partition_note
from turtle_core.discovery.effort import DEFAULT_EFFORT, DEMO_EFFORT, EFFORTS
from turtle_core.ingest.demo import MARKER as DEMO_MARKER
from turtle_core.names import display_name, escape_name
from turtle_core.operations.checks import cluster_request_problem
from turtle_ui import fmt, session
from turtle_ui import jobs as jobs_ui
from turtle_ui.rediscover import discovery_or_hold, held_back

session.through_app()
st.title("Discover categories")
st.caption("Embeds every image with the chosen backbones (cached), then TURTLE groups them into categories.")
session.show_flash()
project = session.require_project()

scan = project.scan_result
n_images = len(scan.images) if scan is not None else 0
n_labels = scan.summary()["folder_labels"] if scan is not None else 0
job = jobs_ui.project_job(project, "discover")
running = job is not None and job.running
scan_job = jobs_ui.project_job(project, "scan")
scanning = scan_job is not None and scan_job.running
# Widgets are keyed by project: a second project never starts with the first one's settings.
form = escape_name(project.folder)  # widget keys must be valid UTF-8
PARTITION_LABELS = {"auto": "Automatic", "turtle": "TURTLE", "kmeans": "k-means"}
# On a fresh install the speed probe (started when the app opened, about 3 s of CPU) is usually done before
# this page; a probe still running is waited for this long, once, so that the first estimate is this machine's.
PROBE_WAIT_S = 3.0
is_demo = (project.folder / DEMO_MARKER).is_file()  # the demo's first run uses the demo effort
choices = session.run_choices(project)  # this visitor's backbones, checkpoints and Ray cluster

# ------------------------------------------------------------------------------------------ settings
with st.container(border=True):
    mode_col, value_col = st.columns([2, 3], gap="large")
    with mode_col:
        mode = st.radio(
            "Number of categories",
            ["Fixed", "Choose automatically"],
            key=f"k_mode:{form}",
            persist_state="session",
            help="Automatic: TURTLE is run for every count in the range and the best-generalising one is kept.",
        )
        effort = st.radio(
            "Effort",
            list(EFFORTS),
            index=list(EFFORTS).index(
                DEMO_EFFORT if is_demo and project.discovery is None else DEFAULT_EFFORT
            ),
            format_func=str.capitalize,
            horizontal=True,
            key=f"effort:{form}",
            persist_state="session",
            help="  \n".join(f"**{e.name.capitalize()}**: {e.summary}." for e in EFFORTS.values()),
        )
        partition = st.radio(
            "Partition",
            list(PARTITION_LABELS),
            format_func=PARTITION_LABELS.get,
            horizontal=True,
            key=f"partition:{form}",
            persist_state="session",
            help="**Automatic**: TURTLE's or k-means' categories, whichever independent runs agree on more "
            "(TURTLE favours equal-sized categories; k-means holds up better when some are much larger). "
            "**TURTLE** or **k-means**: keep that one; TURTLE alone skips the comparison's extra runs.",
        )
    default_k = n_labels if n_labels >= 2 else 10
    with value_col:
        if mode == "Fixed":
            request: int | tuple[int, int] = int(
                st.number_input(
                    "Categories",
                    min_value=2,
                    max_value=1000,
                    value=default_k,
                    step=1,
                    key=f"k_fixed:{form}",
                    persist_state="session",
                )
            )
        else:
            low, high = st.slider(
                "Range to try",
                min_value=2,
                max_value=60,
                value=(max(2, default_k // 2), min(60, default_k * 2)),
                key=f"k_range:{form}",
                persist_state="session",
            )
            request = (int(low), int(high))
        backbones = ", ".join(choices.backbones)
        st.caption(
            f"{fmt.fmt_count(n_images, 'image')} · backbones: {backbones}"
            if scan
            else f"Backbones: {backbones}"
        )
        if scan is not None and n_images:
            from turtle_core.discovery.estimate import estimate_discovery, rounded_seconds
            from turtle_core.embedding.rates import default_device_kind, uncached_counts

            if st.session_state.setdefault("speed_probe_waited", False):
                probe = jobs_ui.speed_probe()
            else:
                with st.spinner("Measuring this machine's speed for the estimate (once)…"):
                    probe = jobs_ui.speed_probe(wait_s=PROBE_WAIT_S)
                st.session_state.speed_probe_waited = True
            measuring = probe is not None and probe.running
            hashes = [r.content_hash for r in scan.images]
            pending = uncached_counts(hashes, choices.backbones, choices.checkpoints)
            guess = estimate_discovery(
                n_images,
                choices.backbones,
                EFFORTS[effort],
                request,
                to_embed=pending,
                device=(project.device or default_device_kind()).split(":")[0],
                partition=partition,
            )
            embed_part = (
                f"embedding {fmt.fmt_count(max(pending.values()), 'image')} {fmt.fmt_duration(guess.embed_s)}"
                if guess.embed_s
                else "embeddings cached"
            )
            shorter = ""
            if guess.turtle_s_if_kmeans is not None:
                kmeans_total = rounded_seconds(guess.embed_s + guess.turtle_s_if_kmeans)
                shorter = f"; about {fmt.fmt_duration(kmeans_total)} if k-means' partition is kept"
            st.caption(
                f"Expected time: about {fmt.fmt_duration(rounded_seconds(guess.total_s))} "
                f"({embed_part}, TURTLE {fmt.fmt_duration(guess.turtle_s)}){shorter}"
                + (" · a first guess: this machine's speed is still being measured" if measuring else ""),
                help="From the image count, the backbones (and how many images they still have to embed) "
                "and the effort, at rates measured on this machine; slower while other work shares it. "
                "When independent k-means runs agree more than TURTLE's, the discovery keeps k-means' "
                "partition and skips its final TURTLE runs.",
            )
            if measuring:  # the estimate is drawn again with this machine's speed once the probe has it
                jobs_ui.rerun_when_done(probe)

    replaces_edits = project.has_curation_edits()
    replaceable = project.work_token() if replaces_edits else None
    confirmed = True
    if replaces_edits and not running:
        st.caption(
            "Running discovery again regroups the images. What carries over: your cluster names (each goes "
            "to the new cluster that shares most of its images) and every image you checked keeps its label. "
            "What does not: merges, splits and moves of images you did not check, and the undo history. The "
            "whole curation is kept and can be brought back from the Project page (Earlier curations)."
        )
        confirmed = st.checkbox(
            "Replace my clusters with a new discovery (names and checked images carry over)",
            key="confirm_rediscover",
        )
    no_images = scan is not None and n_images == 0
    # The engine's own rule (one image per category at least), checked before Run rather than failing after.
    too_few = cluster_request_problem(request, n_images) if scan is not None and not no_images else None
    if scanning:
        st.caption("The folder is being scanned; discovery can start when the scan is done.")
    elif no_images:
        st.warning(
            "This folder has no usable images, so there is nothing to discover. Add images (JPEG, PNG, "
            "WebP, BMP, TIFF, GIF) and rescan it on the Project page, or open another folder.",
            icon=":material/hide_image:",
        )
        st.page_link(session.PROJECT_PAGE, label="Project page", icon=":material/folder_open:")
    elif too_few is not None and not running:
        st.warning(too_few, icon=":material/photo_library:")
    if st.button(
        "Run discovery",
        type="primary",
        icon=":material/play_arrow:",
        disabled=running
        or not confirmed
        or not choices.backbones
        or no_images
        or scanning
        or too_few is not None,
        key="run_discovery",
    ):
        from turtle_core.jobs import JobConflict

        policy = session.folder_policy()
        run = {
            "backbones": list(choices.backbones),
            "checkpoints": {n: p for n, p in choices.checkpoints.items() if policy.permits_checkpoint(p)},
            "ray_address": choices.ray_address if policy.permits_ray(choices.ray_address) else None,
            "within": policy.read_roots,
        }
        # The last discovery's map job, failed or cancelled, must not keep the next result's map from starting.
        jobs_ui.forget_job(project, "umap")
        try:
            jobs_ui.submit_job(
                project,
                "discover",
                lambda progress, cancel: discovery_or_hold(
                    project,
                    request,
                    progress,
                    cancel,
                    effort=effort,
                    partition=partition,
                    replaceable=replaceable,
                    **run,
                ),
            )
        except JobConflict as error:
            session.flash("warning", str(error))
        st.rerun()  # redraw with the button disabled and the progress panel

jobs_ui.job_panel(job, "Discovery")
held_back(project, job)

# ------------------------------------------------------------------------------------------ result
result = project.discovery
if result is None or running:
    if result is None and not running:
        st.info("Choose the number of categories and press **Run discovery**.", icon=":material/lightbulb:")
    st.stop()

# The map's UMAP starts as soon as there is a result, so it is ready (or nearly) when the map is opened.
umap_job = jobs_ui.project_job(project, "umap")
if project.cached_layout("umap") is None and (umap_job is None or umap_job.state == "done"):
    jobs_ui.submit_map_job(project)

st.subheader("Result")
cols = st.columns(4)
cols[0].metric("Categories", result.n_clusters)
cols[1].metric("Images", fmt.fmt_int(len(result.images)))
cols[2].metric(
    "Generalisation score",
    f"{result.score:.3f}",
    help="How well a linear classifier trained on half the data predicts the clusters of the other half; higher is better.",
)
cols[3].metric("Time", fmt.fmt_duration(result.seconds))
st.caption(partition_note(result.params))

if result.metrics:
    st.markdown("**Agreement with folder labels**")
    st.caption(
        "The images sit in class sub-folders, so the discovery can be scored (k-means shown for reference)."
    )
    mcols = st.columns(3)
    for col, (key, label) in zip(
        mcols, [("accuracy", "Accuracy"), ("nmi", "NMI"), ("ari", "ARI")], strict=False
    ):
        value = result.metrics.get(key)
        baseline = (result.kmeans_metrics or {}).get(key)
        if value is None:
            continue
        col.metric(
            label,
            f"{value:.1%}" if key == "accuracy" else f"{value:.3f}",
            delta=None if baseline is None else f"{value - baseline:+.3f} vs k-means ({baseline:.3f})",
        )

chart_cols = st.columns(2 if len(result.scores_by_k) > 1 else 1, gap="large")
with chart_cols[0]:
    st.markdown("**Cluster sizes**")
    curation = project.curation
    if curation is not None:  # the clusters as they are now: current names, after merges and splits
        sizes = curation.sizes()
        frame = pd.DataFrame(
            {
                "cluster": [display_name(curation.name_of(c)) for c in sizes],
                "images": [int(v) for v in sizes.values()],
            }
        )
        if curation.can_undo:
            st.caption("As they are now, with your edits.")
    else:
        ids, counts = np.unique(result.labels, return_counts=True)
        frame = pd.DataFrame({"cluster": [f"Cluster {int(c)}" for c in ids], "images": counts.astype(int)})
    st.bar_chart(frame, x="cluster", y="images", sort="-images", height=280)
if len(result.scores_by_k) > 1:
    with chart_cols[1]:
        st.markdown("**Score per number of categories**")
        scores = pd.DataFrame(
            {"categories": list(result.scores_by_k), "score": list(result.scores_by_k.values())}
        ).sort_values("categories")
        st.line_chart(scores, x="categories", y="score", height=280)
        st.caption(f"Best: {result.n_clusters} categories.")

if result.failed:
    with st.expander(f"Images that could not be embedded ({len(result.failed)})"):
        st.dataframe(
            pd.DataFrame(
                [{"file": display_name(f.path), "reason": display_name(f.reason)} for f in result.failed]
            ),
            hide_index=True,
            width="stretch",
        )

nav = st.columns(2)
nav[0].page_link(session.MAP_PAGE, label="Explore the map", icon=":material/scatter_plot:")
nav[1].page_link(session.CLUSTERS_PAGE, label="Review the clusters", icon=":material/category:")

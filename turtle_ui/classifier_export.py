"""The Export page's classifier: the curated categories written as `classifier.safetensors` + `card.json`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from turtle_core.names import escape_name, markdown_text, unescape_name
from turtle_ui import jobs as jobs_ui
from turtle_ui import session

if TYPE_CHECKING:
    from turtle_core.operations.project import Project

JOB_KIND = "classifier"


def refusal(project: Project, target: Path) -> str | None:
    """Why the classifier cannot be written to `target` (None: it can)."""
    from turtle_core.export.dataset import destination_problem
    from turtle_core.operations.classifier import CARD_FILE

    resolved = Path(os.path.realpath(target))
    refused = destination_problem(project.folder, resolved)  # the export's rule: never in the images
    if refused is not None:
        return refused
    policy = session.folder_policy()
    if not policy.permits(resolved):
        return f"Cannot write there. {policy.explanation}"
    if resolved.exists() and (
        not resolved.is_dir()
        or any(p.name != CARD_FILE and p.suffix != ".safetensors" for p in resolved.iterdir())
    ):
        return f"{resolved} already holds other files: choose an empty or new folder."
    return None


def classifier_export(project: Project) -> None:
    """Destination, button, background job and its outcome."""
    job = jobs_ui.project_job(project, JOB_KIND)
    running = job is not None and job.running
    with st.container(border=True):
        st.markdown("**Classifier** · your categories as a model that labels new images without the app")
        st.caption(
            "A linear probe on the backbones' features, trained on your curation (the learner of 'Propagate my "
            "fixes'), with a card naming the backbones, their weights and your class names. The README shows "
            "the few lines that load it."
        )
        default = escape_name(project.folder.parent / f"{project.folder.name}-classifier")
        dest = unescape_name(
            st.text_input(
                "Classifier folder", value=default, key=f"classifier_dest:{escape_name(project.folder)}"
            ).strip()
        )
        problem = refusal(project, Path(dest).expanduser()) if dest else "Type a folder."
        if problem and dest:
            st.error(markdown_text(problem), icon=":material/block:")
        if st.button(
            "Export classifier",
            icon=":material/model_training:",
            disabled=bool(problem) or running,
            key="export_classifier",
        ):
            target = Path(dest).expanduser()
            jobs_ui.submit_job(project, JOB_KIND, lambda progress, cancel: project.classifier().save(target))
            st.rerun()
    jobs_ui.job_panel(job, "Classifier")
    if job is not None and job.state == "done" and job.result:
        st.success(
            "Wrote " + ", ".join(markdown_text(path) for path in job.result) + ".",
            icon=":material/check_circle:",
        )

"""The Project page's view of the curation over time: rescanning a curated folder (new images labelled, removed
ones dropped), why the folder's count and the curation's count differ, and the earlier curations to restore."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from turtle_core.jobs import JobConflict
from turtle_core.memo import IdentityMemo
from turtle_core.names import markdown_text
from turtle_ui import fmt, session
from turtle_ui import jobs as jobs_ui

if TYPE_CHECKING:
    from turtle_core.ingest.scan import ScanResult
    from turtle_core.operations.project import Project
    from turtle_core.state.project_state import Snapshot

_drift = IdentityMemo(size=4)  # counting the folder's drift is a pass over every path


def start_rescan(project: Project) -> None:
    """Rescan the folder: with a curation, also bring it up to date (`Project.update`)."""
    curated = project.discovery is not None
    kind = "update" if curated else "scan"
    run = project.update if curated else project.scan
    roots = session.read_roots()  # served to others: links out of the allowed folders are not followed
    try:
        jobs_ui.submit_job(
            project, kind, lambda progress, cancel: run(progress=progress, cancel=cancel, within=roots)
        )
    except JobConflict as error:  # a discovery is scanning and embedding right now
        session.flash("warning", str(error))


def rescan_news(project: Project) -> None:
    """Say once, in the session that watched it, what the last rescan of a curated folder did."""
    job = jobs_ui.project_job(project, "update")
    if not jobs_ui.finished_news(job):
        jobs_ui.job_panel(job, "Rescan")
        return
    if job.state == "done":
        st.session_state.edit_nonce += 1  # rows changed: selections made before are void
        session.flash("success", job.result.message())
        st.rerun()
    jobs_ui.job_panel(job, "Rescan")


def count_note(project: Project, scan: ScanResult) -> None:
    """When the folder holds other images than the curation, say how many and why, so every page's count
    can be read against this one."""
    snap = project.snapshot()
    if snap is None:
        return
    curated, added, removed, skipped = _drift.get(
        (snap.discovery, scan, scan.images), snap.rows_key, lambda: _count_drift(snap, scan)
    )
    parts = [f"The curation holds {fmt.fmt_int(curated)} of these images"]
    if added:
        parts.append(f"{fmt.fmt_int(added)} were added or changed since it was made")
    if removed:
        parts.append(f"{fmt.fmt_int(removed)} of its images are gone from the folder or changed")
    if skipped:
        parts.append(f"{fmt.fmt_int(skipped)} could not be embedded")
    if added or removed:
        st.info(" · ".join(parts) + ". **Rescan** to bring the curation up to date.", icon=":material/sync:")
    elif skipped:
        st.caption(" · ".join(parts) + ".")


def _count_drift(snap: Snapshot, scan: ScanResult) -> tuple[int, int, int, int]:
    """Images curated; added or changed since; gone or changed; found but never embedded."""
    curated = {record.path: record.content_hash for record in snap.images}
    found = {record.path: record.content_hash for record in scan.images}
    failed = {item.path for item in snap.discovery.failed}
    added = sum(1 for path, digest in found.items() if curated.get(path) != digest and path not in failed)
    removed = sum(1 for path, digest in curated.items() if found.get(path) != digest)
    return len(curated), added, removed, len(failed & set(found))


def earlier_curations(project: Project) -> None:
    """The curations a new discovery or a restore replaced, each with a Restore button."""
    entries = project.earlier_curations()
    if not entries:
        return
    with st.expander(f"Earlier curations ({len(entries)})"):
        st.caption(
            "Kept whenever a new discovery (or a restore) replaced a curation. Restoring one brings back its "
            "clusters, names and undo history; the current curation is kept here first."
        )
        for entry in entries:
            text, button = st.columns([5, 1], vertical_alignment="center")
            names = ", ".join(entry.names[:5]) + (f" +{len(entry.names) - 5}" if len(entry.names) > 5 else "")
            text.markdown(
                f"**{entry.saved.replace('T', ' ').rstrip('Z')} UTC** · {markdown_text(entry.reason)}  \n"
                f"{fmt.fmt_count(entry.n_images, 'image')} · {fmt.fmt_count(entry.n_edits, 'edit')} · "
                f"{fmt.fmt_int(entry.n_checked)} checked" + (f" · {markdown_text(names)}" if names else "")
            )
            if button.button(
                "Restore",
                key=f"restore:{entry.name}",
                disabled=not entry.restorable,
                help=None if entry.restorable else "Its discovery was damaged: it can be read, not restored.",
                width="stretch",
            ):
                project.restore_curation(entry.name)
                st.session_state.edit_nonce += 1
                session.flash(
                    "success", f"Restored the curation of {entry.saved.replace('T', ' ').rstrip('Z')} UTC."
                )
                st.rerun()

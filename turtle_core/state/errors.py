"""Errors a project raises; every message says what happened and what the user can do."""

from __future__ import annotations


class ProjectError(ValueError):
    """A problem the user can act on; the message says what and how."""


class StaleEdit(ProjectError):
    """An edit was chosen on clusters that have since been replaced (a new discovery) or changed under
    it (a split whose cluster was edited meanwhile). Nothing was changed."""


class CurationHasEdits(ProjectError):
    """A new discovery would discard a curation that has edits, and replacing it was not asked for."""


class CurationChanged(CurationHasEdits):
    """The curation changed (another tab or program edited it) after the curator agreed to replace it as it
    was: the new discovery was not installed. `discovery` holds it, to install anyway if they still want."""

    def __init__(self, message: str, discovery: object) -> None:
        super().__init__(message)
        self.discovery = discovery

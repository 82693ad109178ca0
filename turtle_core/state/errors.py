"""Errors a project raises; every message says what happened and what the user can do."""

from __future__ import annotations


class ProjectError(ValueError):
    """A problem the user can act on; the message says what and how."""


class StaleEdit(ProjectError):
    """An edit was chosen on clusters that have since been replaced (a new discovery) or changed under
    it (a split whose cluster was edited meanwhile). Nothing was changed."""


class CurationHasEdits(ProjectError):
    """A new discovery would discard a curation that has edits, and replacing it was not asked for."""

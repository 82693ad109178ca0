"""A project's state: the Project facade, curation edits, background jobs."""

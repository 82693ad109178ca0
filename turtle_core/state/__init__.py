"""A project's state and its file formats: the discovery, the curation with its undo history, the edits, and the store that reads and writes them."""

"""Writing a labeled dataset out of a curated project."""

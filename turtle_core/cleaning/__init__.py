"""Cleaning a folder inside the labelling loop: near-duplicates from the discovery's embeddings,
image-quality flags from the scan, and name suggestions for clusters."""

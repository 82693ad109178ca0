"""2-D maps of the embeddings (PCA and UMAP layouts), cached on disk."""

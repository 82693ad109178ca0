"""Foundation-model backbones, the content-addressed embedding cache, 2-D layouts of embeddings."""

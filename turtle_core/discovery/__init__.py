"""TURTLE and label-free model selection: categories from embeddings."""

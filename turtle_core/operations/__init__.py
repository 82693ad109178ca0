"""Operations on a project: the `Project` facade and the long steps it runs (embed and discover, propagate, split)."""

"""nnfunc."""

"""Where priors come from and go: prior folders, the registry, Hub pull / push / cache,
model cards and official-checkpoint import."""

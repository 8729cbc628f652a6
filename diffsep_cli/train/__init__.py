"""Training a prior: data (crops, augmentation) and the trainer (EMA, AMP, DDP, resume)."""

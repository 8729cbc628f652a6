"""Tensors only: STFT, network, prior (the denoiser contract), diffusion, samplers, guidance,
separation, streaming segments, metrics and baselines. No files, no network, no terminal."""

"""HTML reports of separations and benchmarks: players, spectrograms, tables and plots."""

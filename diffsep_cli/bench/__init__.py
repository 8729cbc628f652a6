"""Benchmarks: the systems, their scores and costs, summaries (returns data; prints nothing)."""

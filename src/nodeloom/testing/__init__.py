"""Builders of tiny, download-free fixtures shared by tests and benchmarks."""

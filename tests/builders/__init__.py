"""Builders that make small real models and hardware profiles for tests and benchmarks."""

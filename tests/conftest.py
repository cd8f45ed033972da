"""Shared pytest fixtures for the whole test suite live here (rootdir conftest)."""

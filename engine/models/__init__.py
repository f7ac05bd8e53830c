"""Stable Diffusion 1.x models: find, check, download and load them (loading), the
out-of-memory ladder (fallback), and tiny random models for tests and the self-test (tiny).
"""

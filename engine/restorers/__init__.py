"""Restorers: the ways a pair of aligned face crops becomes a restored crop. Each is a
plugin with the same contract (the instant classic blend, the EditedID diffusion method).
"""

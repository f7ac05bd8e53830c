"""Files in and out: reading hostile image files safely (images), atomic writes and file
hashes (files), and writing results with their metadata (export).
"""

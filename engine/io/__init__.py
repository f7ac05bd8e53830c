"""Files in and out: reading hostile image files safely (images), atomic writes and file
hashes (files), image files of a folder paired by name (folders), and writing results
with their metadata (export).
"""

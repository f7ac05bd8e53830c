"""Files in and out: reading hostile image files safely (images) and writing results with
their metadata atomically (export).
"""

"""Faces in photos: the data types every backend returns (types), the dlib and
insightface detectors/landmarkers/identity backends and pairing of faces between the
original and the edited photo (detection), and identity similarity (identity).
"""

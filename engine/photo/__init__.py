"""Whole photos: align the original face into the edited face's crop frame (align),
automatic face and element masks (masks), feathered paste-back (pasteback), and the
analyse -> restore -> compose pipeline that drives a restorer (pipeline).
"""

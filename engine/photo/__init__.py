"""Whole photos: align the original face into the edited face's crop frame (align),
automatic face and element masks (masks), feathered paste-back (pasteback), the
analyse -> restore -> compose pipeline (pipeline) and the small contract of the
restorer it is handed (contract).
"""

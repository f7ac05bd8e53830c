"""The EditedID method on aligned face crops (paper sec. 2): the step plan and its solvers
(schedule), model plumbing (latents), Alignment (inversion, eq. 1-3), Disentanglement
(nulltext, eq. 4-5), Entanglement (attention, eq. 7-9) and `restore_faces`, which runs
the three stages in order (restore).
"""

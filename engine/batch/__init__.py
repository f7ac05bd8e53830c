"""Folder mode: pair files of two folders, restore each pair, resume, report."""

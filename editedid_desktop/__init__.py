"""EditedID Desktop: the PySide6 application (windows, canvas, panels, worker thread)."""

__version__ = "0.1.0"

"""Our own exception types. Every message says what went wrong and what to do about it."""

from __future__ import annotations


class EditedIDError(Exception):
    """Base class of every error the engine raises on purpose."""


class InputError(EditedIDError, ValueError):
    """An input (image, mask, word, parameter) cannot be used as given."""


class ModelError(EditedIDError):
    """A model folder, checkpoint or hub id cannot be loaded."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """The model is not on this machine (and was not asked to be downloaded)."""


class UnsafeCheckpointError(ModelError):
    """A pickle checkpoint was offered without the caller allowing pickle files."""


class DownloadError(ModelError):
    """A download failed or its file did not verify."""


class Cancelled(EditedIDError):
    """The caller asked to stop; raised within one diffusion step."""


class OutOfMemory(EditedIDError, MemoryError):
    """Even the lowest-memory settings did not fit on the device."""


class NumericalError(EditedIDError):
    """The computation produced non-finite (NaN / inf) or black values; nothing is saved."""

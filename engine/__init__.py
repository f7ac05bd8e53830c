"""EditedID engine: restore the original facial identity in AI-edited photos.

Pure Python + torch; never imports Qt. Public API:

- `EditedIDParams` — every parameter, the paper's defaults.
- `load_sd_model(source, ...)` — an SD 1.x model from a folder, hub id or .safetensors.
- `restore_faces(model, pairs, params, on_step=None, cancel=None)` — EditedID on aligned
  face crops.
"""

from engine.privacy import apply_privacy_defaults

apply_privacy_defaults()  # before anything imports huggingface_hub / transformers

from engine.errors import (  # noqa: E402
    Cancelled,
    DownloadError,
    EditedIDError,
    InputError,
    ModelError,
    ModelNotFoundError,
    OutOfMemory,
    UnsafeCheckpointError,
)
from engine.params import EditedIDParams  # noqa: E402

__all__ = [
    "Cancelled",
    "DownloadError",
    "EditedIDError",
    "EditedIDParams",
    "InputError",
    "ModelError",
    "ModelNotFoundError",
    "OutOfMemory",
    "UnsafeCheckpointError",
]
__version__ = "0.1.0"

"""Downloading a hub id's SD 1.x weights (safetensors only) into the models folder:
`download_sd_model`, with byte progress and cancel through a tqdm class handed to
huggingface_hub, and one clear DownloadError for each way it fails (gated licence,
unknown id, offline, network, no safetensors weights). huggingface_hub is imported only
when a download runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import Cancelled, DownloadError
from engine.models.checks import WEIGHT_COMPONENTS, weight_format
from engine.models.places import default_models_dir
from engine.models.sources import allow_patterns, hub_folder_name, looks_like_hub_id

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]


def _progress_tqdm(progress: ProgressFn | None, cancel: CancelFn | None, label: str) -> type:
    """A tqdm class for huggingface_hub that forwards byte progress and honours cancel."""
    import io

    from tqdm.auto import tqdm as base

    state = {"files_done": 0, "files_total": 0}

    class _Null(io.StringIO):
        def write(self, s: str) -> int:  # noqa: D401 - swallow the bar's drawing
            return len(s)

    class ProgressTqdm(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["file"] = _Null()
            kwargs["disable"] = False
            kwargs["mininterval"] = 0
            super().__init__(*args, **kwargs)
            desc = str(kwargs.get("desc") or "")
            self._role = (
                "files"
                if desc.startswith("Fetching")
                else "transfer"
                if desc.startswith("Downloading bytes")
                else "bytes"
                if kwargs.get("unit") == "B"
                else "other"
            )
            if self._role == "files":
                state["files_total"] = int(self.total or 0)

        def update(self, n: float | None = 1) -> bool | None:
            if cancel is not None and cancel():
                raise Cancelled(f"Download of {label} cancelled.")
            out = super().update(n)
            if self._role == "files":
                state["files_done"] = int(self.n)
            if progress is not None and self._role == "bytes":
                name = f"{label} ({state['files_done']}/{state['files_total']} files)"
                progress(int(self.n), int(self.total or 0), name)
            return out

    return ProgressTqdm


def download_sd_model(
    hub_id: str,
    *,
    models_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    variant: str | None = None,
) -> Path:
    """Download hub_id's SD 1.x diffusers weights (safetensors only) into models_dir.

    Target: models_dir/<org>--<name>. Interrupted downloads resume. progress(done_bytes,
    total_bytes, label) is called as bytes arrive; cancel() returning True stops the
    download with Cancelled. variant="fp16" fetches the half-size fp16 weights.
    Network problems raise DownloadError.
    """
    if not looks_like_hub_id(hub_id):
        raise DownloadError(f"{hub_id!r} is not a hub id (expected 'organisation/name').")
    if variant not in (None, "fp16"):
        raise DownloadError(f"Unknown weights variant {variant!r}: use None or 'fp16'.")
    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    target = root / hub_folder_name(hub_id)
    if cancel is not None and cancel():
        raise Cancelled(f"Download of {hub_id} cancelled.")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"Cannot create the models folder {target}: {exc}") from exc

    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    offline_hint = (
        f"Check the internet connection (huggingface.co must be reachable). Offline: "
        f"download https://huggingface.co/{hub_id} on another machine and copy the folder "
        f"to {target}."
    )
    try:
        huggingface_hub.snapshot_download(
            hub_id,
            local_dir=str(target),
            allow_patterns=allow_patterns(variant),
            tqdm_class=_progress_tqdm(progress, cancel, hub_id),
        )
    except Cancelled:
        raise
    except hf_errors.GatedRepoError as exc:
        raise DownloadError(
            f"{hub_id} needs you to accept its licence on huggingface.co and log in "
            f"(huggingface-cli login) before downloading: {exc}"
        ) from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise DownloadError(f"{hub_id} does not exist on huggingface.co (check the id).") from exc
    except hf_errors.OfflineModeIsEnabled as exc:
        raise DownloadError(
            f"Cannot download {hub_id}: offline mode is on (HF_HUB_OFFLINE). {offline_hint}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - connection, HTTP, disk errors
        raise DownloadError(f"Download of {hub_id} failed: {exc}. {offline_hint}") from exc

    if not (target / "model_index.json").is_file():
        raise DownloadError(
            f"Download of {hub_id} finished but {target} has no model_index.json: "
            "it is not a diffusers model repository."
        )
    for comp in WEIGHT_COMPONENTS:
        if (target / comp).is_dir() and weight_format(target / comp)[0] == "safetensors":
            continue
        raise DownloadError(
            f"{hub_id} has no safetensors weights for {comp}"
            f"{' in the fp16 variant' if variant else ''}; this app does not download pickle "
            "weights. Convert the model elsewhere and point to the converted folder."
        )
    return target

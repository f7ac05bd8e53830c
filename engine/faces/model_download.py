"""Download of the insightface buffalo_l face models (the model manager and
`editedid-cli models download faces`): `download_face_models` streams the zip with
progress, resumes a `.part` file with an HTTP Range request, checks its sha256, unpacks it
safely into a temporary folder and renames that into place. The only code of engine.faces
that touches the network, and only when called.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

from engine.errors import Cancelled, DownloadError
from engine.faces.insightface_backend import INSIGHTFACE_PACK, insightface_pack_dir, onnx_files

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]

BUFFALO_L_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"
# sha256 of buffalo_l.zip. Not pinned yet: this was written on a machine without network
# access, so the real digest could not be read. While it is None, download_face_models
# computes the digest, logs it and records it in <pack>/.download.json, and still checks
# the zip's own CRCs and that the pack holds a detector and a recogniser. Pin it by
# running `sha256sum buffalo_l.zip` on a trusted copy; a mismatch then deletes the file
# and raises DownloadError.
BUFFALO_L_SHA256: str | None = None

_MIB = 1 << 20


# ---------------------------------------------------------------------------------------
# Download of buffalo_l (model manager / `editedid-cli models download faces`)
# ---------------------------------------------------------------------------------------
def download_face_models(
    models_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    *,
    url: str = BUFFALO_L_URL,
    sha256: str | None = BUFFALO_L_SHA256,
    pack: str = INSIGHTFACE_PACK,
    timeout: float = 30.0,
) -> Path:
    """Download and unpack insightface buffalo_l into <models_dir>/insightface/models/<pack>.

    Streams with progress(done, total, label), resumes an interrupted `.part` file with an
    HTTP Range request, verifies sha256 (a mismatch deletes the file: DownloadError),
    extracts safely (no absolute paths, `..`, links or special files) into a temporary
    folder and renames it into place. Cancel raises Cancelled and keeps the `.part` file
    so the next call resumes. Returns the pack folder; does nothing if it already holds
    .onnx files.
    """
    target = insightface_pack_dir(models_dir, pack)
    if onnx_files(target):
        return target
    downloads = target.parent.parent / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(urllib.request.urlparse(url).path).name or f"{pack}.zip"
    part = downloads / f"{name}.part"
    label = name
    _fetch(url, part, progress, cancel, label, timeout)

    digest = _sha256_file(part, cancel)
    if sha256 is not None and digest.lower() != sha256.strip().lower():
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{name} did not verify: sha256 {digest} instead of {sha256}. The file was "
            "deleted; download it again (if this repeats, the server's file changed)."
        )
    if sha256 is None:
        log.warning("%s downloaded without a pinned sha256; its sha256 is %s", name, digest)
    if cancel is not None and cancel():
        raise Cancelled(f"Download of {name} cancelled (the file is kept for next time).")
    if progress is not None:
        progress(0, 1, f"unpacking {name}")
    try:
        _safe_extract_pack(part, target)
    except zipfile.BadZipFile as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{name} is not a valid zip file ({exc}); it was deleted.") from exc
    record = {"url": url, "sha256": digest, "pinned_sha256": sha256}
    (target / ".download.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    part.unlink(missing_ok=True)
    if progress is not None:
        progress(1, 1, f"unpacking {name}")
    return target


def _fetch(
    url: str,
    part: Path,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
    label: str,
    timeout: float,
) -> None:
    """Stream `url` into `part`, resuming from its current size with a Range request."""
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "EditedID-Desktop"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - https/http
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and done:  # nothing left to send: the part file is complete
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total is None or total == done:
                if progress is not None:
                    progress(done, done, label)
                return
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"The partial download of {label} did not match the server's file and was "
                "deleted; run the download again."
            ) from exc
        raise DownloadError(
            f"Could not download {label} from {url}: HTTP {exc.code} {exc.reason}."
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"Could not download {label} from {url}: {reason}. Check the internet connection "
            "and run the download again (it resumes where it stopped)."
        ) from exc
    with response:
        status = getattr(response, "status", 200)
        if status == 206:
            total = _total_from_content_range(response.headers.get("Content-Range"))
            mode = "ab"
        else:  # 200: the server sent the whole file (it ignored or never got a Range)
            done = 0
            total = None
            mode = "wb"
        length = response.headers.get("Content-Length")
        if total is None and length is not None and length.isdigit():
            total = done + int(length)
        total = total or 0
        if progress is not None:
            progress(done, total, label)
        try:
            with open(part, mode) as handle:
                while True:
                    if cancel is not None and cancel():
                        raise Cancelled(
                            f"Download of {label} cancelled; run it again to resume from "
                            f"{done / _MIB:.1f} MiB."
                        )
                    chunk = response.read(_MIB)
                    if not chunk:
                        break
                    handle.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, max(total, done), label)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise DownloadError(
                f"The download of {label} was interrupted at {done / _MIB:.1f} MiB ({exc}); "
                "run it again to resume."
            ) from exc
    if total and done != total:
        raise DownloadError(
            f"The download of {label} stopped at {done} of {total} bytes; run it again to resume."
        )


def _total_from_content_range(value: str | None) -> int | None:
    # "bytes 100-199/200" or "bytes */200"
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _sha256_file(path: Path, cancel: CancelFn | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 * _MIB), b""):
            if cancel is not None and cancel():
                raise Cancelled(f"Verification of {path.name} cancelled.")
            h.update(block)
    return h.hexdigest()


def _check_member(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The member's safe relative path (None for directories); DownloadError if unsafe."""
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DownloadError(f"Refusing to unpack {name!r}: the archive contains a link.")
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise DownloadError(f"Refusing to unpack {name!r}: not a regular file.")
    posix = PurePosixPath(name.replace("\\", "/"))
    if (
        name.startswith(("/", "\\"))
        or posix.is_absolute()
        or PureWindowsPath(name).drive
        or PureWindowsPath(name).is_absolute()
        or ".." in posix.parts
        or "\x00" in name
    ):
        raise DownloadError(f"Refusing to unpack {name!r}: the path leaves the model folder.")
    if info.is_dir() or name.endswith(("/", "\\")):
        return None
    parts = [p for p in posix.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def _safe_extract_pack(archive: Path, target: Path) -> None:
    """Unpack `archive` into a temp folder beside `target`, check it, rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        members = [(info, _check_member(info)) for info in zf.infolist()]  # check all first
        bad = zf.testzip()
        if bad is not None:
            raise DownloadError(f"{archive.name} is damaged ({bad} fails its CRC check).")
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            root = staging.resolve()
            for info, relative in members:
                if relative is None:
                    continue
                destination = (root / relative).resolve()
                if root not in destination.parents:
                    raise DownloadError(
                        f"Refusing to unpack {info.filename!r}: outside the folder."
                    )
                destination.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as source, open(destination, "wb") as out:
                    shutil.copyfileobj(source, out, _MIB)
            pack_root = staging
            if not onnx_files(staging):  # the zip may hold one folder (e.g. buffalo_l/)
                subdirs = [p for p in staging.iterdir() if p.is_dir() and onnx_files(p)]
                if len(subdirs) != 1:
                    raise DownloadError(
                        f"{archive.name} holds no .onnx model files: it is not an insightface pack."
                    )
                pack_root = subdirs[0]
            _replace_dir(pack_root, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _replace_dir(source: Path, target: Path) -> None:
    """Move `source` to `target` with renames only (an old target is moved aside first)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    try:
        os.replace(source, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

"""A result and its sidecar JSON (`result.png.json`: inputs with the sha256 of the bytes
used, parameters, scores) as one unit: `write_with_sidecar` stages the sidecar first,
writes the output, then renames the sidecar into place, so an output never stands without
its sidecar, and the sidecar carries our marker (`SIDECAR_MARKER`) by which resume knows
it is ours (`read_sidecar`); `sidecar_inputs` and `sidecar_matches_inputs` record and
check the inputs' hashes. What may be written where: engine.io.targets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.errors import InputError
from engine.io.files import commit_file, sha256_file, stage_file
from engine.io.targets import FORMATS, check_result_target, sidecar_path
from engine.io.untrusted import read_json

SIDECAR_MARKER = "editedid_sidecar"  # key with the sidecar schema version: the file is ours
SIDECAR_VERSION = 1
MAX_SIDECAR_BYTES = 16 * 1024 * 1024  # a larger ".json" beside an output is not ours
PREVIOUS_SUFFIX = ".editedid-previous"  # an overwritten pair, kept until the new one is whole


def write_with_sidecar(
    out: str | Path,
    write_output,
    sidecar: dict,
    *,
    protected_paths=(),
    overwrite: bool = False,
    formats: dict[str, str] | None = FORMATS,
) -> Path:
    """Write a result (`write_output()` writes `out`) and its sidecar JSON as one unit.

    The sidecar is staged first (a full disk fails here, before the output exists), the
    output written, then the sidecar renamed into place; if that last step fails the new
    output is removed, so no output is ever left claiming a success without its sidecar.
    The sidecar gets our marker and status "ok".
    """
    out = Path(out)
    side = sidecar_path(out)
    check_result_target(out, protected_paths=protected_paths, overwrite=overwrite, formats=formats)
    data = {SIDECAR_MARKER: SIDECAR_VERSION, "status": "ok", **sidecar}
    text = json.dumps(data, indent=2, default=str).encode("utf-8")
    staged = stage_file(side, lambda handle: handle.write(text))
    kept: list[tuple[Path, Path]] = []
    try:
        kept = _set_aside(out, side) if overwrite else []
        write_output()
        if not out.is_file():
            raise InputError(f"{out}: the result was not written.")
        try:
            commit_file(staged, side)
        except BaseException:
            out.unlink(missing_ok=True)  # ours, just written: no output without a sidecar
            raise
    except BaseException:
        _put_back(kept)  # the earlier pair, as it was
        raise
    finally:
        staged.unlink(missing_ok=True)
    for _, aside in kept:
        aside.unlink(missing_ok=True)
    return out


def _set_aside(out: Path, side: Path) -> list[tuple[Path, Path]]:
    """With --overwrite, the earlier result and sidecar are renamed aside (a rename takes
    no disk space) until the new pair is complete, so a failure on the way (a full disk
    when the new sidecar is renamed in) puts the earlier pair back instead of leaving
    neither. The names are visible, not temp files: if the process is killed meanwhile,
    the earlier result is still there to recover, never swept away as a stale temp."""
    kept = []
    for target in (out, side):
        if target.is_file():
            aside = target.with_name(f"{target.name}.{os.getpid()}{PREVIOUS_SUFFIX}")
            os.replace(target, aside)
            kept.append((target, aside))
    return kept


def _put_back(kept: list[tuple[Path, Path]]) -> None:
    for target, aside in kept:
        os.replace(aside, target)


def read_sidecar(output: str | Path) -> dict | None:
    """The sidecar of `output` when it is one of ours (marker, a JSON object); else None.

    Reads only a regular file of sane size: a pipe, a folder or a huge file named like a
    sidecar is not ours.
    """
    side = sidecar_path(output)
    try:
        data = read_json(side, what="sidecar", limit=MAX_SIDECAR_BYTES)
    except InputError:  # missing, not a regular file, too large, not JSON, ambiguous
        return None
    if not isinstance(data, dict) or data.get(SIDECAR_MARKER) != SIDECAR_VERSION:
        return None
    return data


def sidecar_inputs(paths: dict[str, str | Path], hashes: dict[str, str]) -> dict:
    """The sidecar's "inputs" entry: each input's resolved path and the sha256 used."""
    return {
        name: {"path": str(Path(path).resolve()), "sha256": hashes[name]}
        for name, path in paths.items()
    }


def sidecar_matches_inputs(data: dict, inputs: dict[str, str | Path]) -> bool:
    """True when the sidecar's stored sha256 of every named input matches the file now."""
    stored = data.get("inputs")
    if not isinstance(stored, dict):
        return False
    for name, path in inputs.items():
        entry = stored.get(name)
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or len(digest) != 64:
            return False
        try:
            if not Path(path).is_file() or sha256_file(path) != digest:
                return False
        except OSError:
            return False
    return True

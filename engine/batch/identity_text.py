"""Identity in words, as every view shows it: "% same person" before -> after per face.

One text for the window's face panels' scale, the batch dialog and the batch reports
(issue 12 D11), and which faces the restore made look less like the person (issue 20).
Read from a result's sidecar, whose scores carry their metric and threshold; the
reports' bare id_before/id_after numbers do not.
"""

from __future__ import annotations

from pathlib import Path

from engine.faces.identity import display_similarity
from engine.io.export import read_sidecar


def _similarity(score) -> float | None:
    """One identity score as the "% same person" fraction every view shows (None when
    the score is not readable)."""
    try:
        return display_similarity(
            float(score["value"]), str(score["metric"]), float(score["threshold"])
        )
    except (KeyError, TypeError, ValueError):
        return None


def percent(score) -> str:
    """One identity score as the face panels show it: "85%" (threshold at 50%)."""
    value = _similarity(score)
    return "\u2014" if value is None else f"{value:.0%}"


def _scored_faces(output: str | Path) -> list[dict]:
    """The sidecar's faces that have an identity score before the restore."""
    sidecar = read_sidecar(output)
    return [
        f for f in (sidecar or {}).get("faces", [])
        if isinstance(f, dict) and isinstance(f.get("id_before"), dict)
    ]  # fmt: skip


def same_person_text(output: str | Path) -> tuple[str, str]:
    """(text, detail) for the result at `output`: "66% -> 31%" per restored face
    ("1: ..., 2: ..." with several), and the raw scores with metric, threshold and model;
    ("", "") when the output has no readable sidecar or no scored face."""
    faces = _scored_faces(output)
    parts, details = [], []
    for face in faces:
        before, after = face["id_before"], face.get("id_after") or {}
        text = f"{percent(before)} \u2192 {percent(after)}"
        number = face.get("face", "?")
        parts.append(f"{number}: {text}" if len(faces) > 1 else text)
        metric, value = before.get("metric", "?"), before.get("value", "?")
        raw = f"{metric} {value} \u2192 {after.get('value', '?')}"
        details.append(
            f"Face {number}: {text} same person ({raw}; threshold "
            f"{before.get('threshold', '?')}, {before.get('model', '?')})"
        )
    return ", ".join(parts), "\n".join(details)


def identity_worse(output: str | Path) -> str:
    """The faces of the result at `output` that look LESS like the person after the
    restore than before, as shown ("43% -> 35%"; "1: ..., 3: ..." with several faces):
    the restore made them worse, whatever its status. "" when none did (equal shown
    percentages are not worse) or nothing is scored."""
    faces = _scored_faces(output)
    worse = []
    for face in faces:
        before, after = _similarity(face["id_before"]), _similarity(face.get("id_after"))
        if before is None or after is None or round(after * 100) >= round(before * 100):
            continue
        text = f"{before:.0%} \u2192 {after:.0%}"
        worse.append(f"{face.get('face', '?')}: {text}" if len(faces) > 1 else text)
    return ", ".join(worse)

"""Identity in words, as every view shows it: "% same person" before -> after per face.

One text for the window's face panels' scale, the batch dialog and the batch reports
(issue 12 D11). Read from a result's sidecar, whose scores carry their metric and
threshold; the reports' bare id_before/id_after numbers do not.
"""

from __future__ import annotations

from pathlib import Path

from engine.faces.identity import display_similarity
from engine.io.export import read_sidecar


def percent(score) -> str:
    """One identity score as the face panels show it: "85%" (threshold at 50%)."""
    try:
        value = display_similarity(
            float(score["value"]), str(score["metric"]), float(score["threshold"])
        )
    except (KeyError, TypeError, ValueError):
        return "\u2014"
    return f"{value:.0%}"


def same_person_text(output: str | Path) -> tuple[str, str]:
    """(text, detail) for the result at `output`: "66% -> 31%" per restored face
    ("1: ..., 2: ..." with several), and the raw scores with metric, threshold and model;
    ("", "") when the output has no readable sidecar or no scored face."""
    sidecar = read_sidecar(output)
    faces = [
        f for f in (sidecar or {}).get("faces", [])
        if isinstance(f, dict) and isinstance(f.get("id_before"), dict)
    ]  # fmt: skip
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

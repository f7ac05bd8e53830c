"""Per-face time of the classic restore at 512 px (median of N runs), printed as a table.

    python bench/classic_speed.py [--runs 5]

Uses the synthetic edit of the test fixtures (grace_hopper with the astronaut's face
swapped in and glasses drawn), aligned as the app aligns it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.photo.align import align_edited, align_original_to_edited  # noqa: E402
from engine.photo.masks import face_mask_from_landmarks, to_crop  # noqa: E402
from engine.restorers.classic import classic_restore_crop  # noqa: E402
from tests.fixtures.faces import synthetic_edit  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    original, o_face, edited, e_face, frames = synthetic_edit()
    e_crop = align_edited(edited, e_face)
    o_crop = align_original_to_edited(original, o_face, e_crop, e_face)
    face_mask = face_mask_from_landmarks(o_crop, o_face)
    element = to_crop(frames, e_crop)
    print("| method | median ms at 512 | min ms |\n|---|---|---|")
    for method in ("laplacian", "poisson", "alpha"):
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            try:
                classic_restore_crop(o_crop, e_crop, face_mask, element, method=method)
            except Exception as error:  # noqa: BLE001 - a method this build lacks
                print(f"| {method} | n/a ({error}) | |")
                break
            times.append(time.perf_counter() - start)
        else:
            print(f"| {method} | {np.median(times) * 1000:.1f} | {min(times) * 1000:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

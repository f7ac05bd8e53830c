"""How far the role check (engine.photo.roles) is from its threshold on simulated AI
edits of real photos (issue 20 item 5), opened the right way round and the wrong way.

    .venv/bin/python bench/role_check.py

For each photo (grace_hopper, astronaut, the six-person t1), smoothing (bilateral,
Gaussian) and strength, with and without JPEG re-compression of the original: the
score of the pair as opened right (original, edit) and wrong (edit, original). The
check flags a pair when its score reaches 0 (engine.photo.roles.RoleCheck.score): the
right way round must stay below 0, the wrong way round reach it. Not a timed test:
dlib detection takes a second or two per photo.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.photo.pipeline import analyze_photos  # noqa: E402
from tests.fixtures.ai_edit import jpeg_again, simulate_ai_edit  # noqa: E402
from tests.fixtures.faces import (  # noqa: E402
    dlib_faces,
    draw_glasses,
    photo,
    sample_face,
)

CASES = [
    (name, smoothing, strength, jpeg)
    for name in ("grace_hopper", "astronaut", "t1")
    for smoothing, strength in (
        ("bilateral", 0.5),
        ("bilateral", 1.0),
        ("gaussian", 0.6),
        ("gaussian", 1.0),
    )  # fmt: skip
    for jpeg in (False, True)
]


def score(original, edited) -> tuple[float | None, bool]:
    analysis = analyze_photos(original, edited, backend="dlib")
    check = analysis.roles
    return (None, False) if check is None else (check.score, check.looks_swapped)


def main() -> int:
    print(f"{'photo':<13} {'smoothing':<10} {'str':>4} {'jpeg':>4} "
          f"{'right':>7} {'wrong':>7}  verdict")  # fmt: skip
    bad = 0
    for name, smoothing, strength, jpeg in CASES:
        real = photo(name)
        edit = simulate_ai_edit(real, dlib_faces(real), smoothing=smoothing, strength=strength)
        if jpeg:
            real = jpeg_again(real)
        right, right_flag = score(real, edit)
        wrong, wrong_flag = score(edit, real)
        ok = not right_flag and wrong_flag
        bad += not ok
        print(f"{name:<13} {smoothing:<10} {strength:>4.1f} {'yes' if jpeg else 'no':>4} "
              f"{_num(right):>7} {_num(wrong):>7}  {'ok' if ok else 'MISSED'}")  # fmt: skip
    print(f"{len(CASES) - bad}/{len(CASES)} pairs told apart both ways")
    # controls: edits that keep the photo's own pixels must not be flagged either way
    real = photo("grace_hopper")
    glasses, _ = draw_glasses(real, sample_face("grace_hopper"))
    controls = [("glasses drawn on", real, glasses), ("JPEG'd again", real, jpeg_again(real))]
    flagged = 0
    for label, original, edited in controls:
        right, right_flag = score(original, edited)
        wrong, wrong_flag = score(edited, original)
        flagged += right_flag + wrong_flag
        print(f"{'control: ' + label:<33} {_num(right):>7} {_num(wrong):>7}  "
              f"{'FLAGGED' if right_flag or wrong_flag else 'ok'}")  # fmt: skip
    print(f"{flagged} control pairs flagged (should be 0)")
    return 0


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


if __name__ == "__main__":
    raise SystemExit(main())

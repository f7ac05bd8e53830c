"""The .deb on a freshly bootstrapped Debian 12, installed and used as on a user's machine
(slow; `pytest -m slow`; needs root, debootstrap, Xvfb, x11-utils and imagemagick, and the
Debian mirror of /etc/apt/sources.list(.d)).

packaging/check_fresh_debian.sh does the work (see its header): debootstrap minbase
(cached per day), `apt-get install --no-install-recommends ./x.deb` without --force-*,
then as a normal user `editedid --self-test`, `editedid-cli restore --mode classic`
into a folder that does not exist yet, the GUI on Xvfb opening the pair from its command
line with readable menu text, nothing written outside EditedID's folders in the home, and
`apt-get purge --autoremove` leaving the files and the package set as before.

The .deb is the one tests/test_packaging.py's slow check builds (tests/bundle_build.py:
one build per run)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.bundle_build import ROOT, built_deb, linux_bundle_check

TOOLS = ("debootstrap", "Xvfb", "xwininfo", "import", "chroot", "objdump", "dpkg-deb")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Debian root"),
]


def _missing() -> list[str]:
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if os.geteuid() != 0:
        missing.append("root (debootstrap, chroot, mount)")
    return missing


@pytest.fixture(scope="module")
def fresh_debian(tmp_path_factory) -> tuple[int, str, object]:
    missing = _missing()
    if missing:
        message = "the fresh-Debian check needs " + ", ".join(missing)
        # slow tier, run only when asked for: its tools are hard dependencies then
        pytest.fail(message + " (.ci/run installs them)")
    code, log = linux_bundle_check()
    assert code == 0, log[-6000:]
    from tests.helpers import sample_photo

    photos = tmp_path_factory.mktemp("photos")
    photo = Image.open(sample_photo("grace_hopper")).convert("RGB")
    photo.save(photos / "original.jpg")
    brighter = np.clip(np.asarray(photo).astype(int) + 20, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(photos / "edited.png")
    out = tmp_path_factory.mktemp("fresh-debian")
    run = subprocess.run(
        [
            "bash",
            str(ROOT / "packaging" / "check_fresh_debian.sh"),
            str(built_deb(log)),
            str(photos / "original.jpg"),
            str(photos / "edited.png"),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=2400,
        cwd=ROOT,
    )
    print(run.stdout)  # the step times and sizes, for the CI log
    return run.returncode, run.stdout + run.stderr, out


def test_the_deb_installs_runs_and_purges_on_a_fresh_debian(fresh_debian):
    code, log, out = fresh_debian
    assert code == 0 and "check_fresh_debian: OK" in log, log[-8000:]
    assert re.search(r"RESULT: PASS \((\d+) of \1 checks\)", (out / "self-test.log").read_text())
    # apt installed the run-time data fontconfig loads: the config, a font, the cache
    depends = re.search(r"^== Depends: (.*)$", log, flags=re.M).group(1).split(", ")
    assert {"fontconfig", "fontconfig-config", "fonts-dejavu-core"} <= set(depends)
    for step in ("apt-get install", "--self-test", "restore", "GUI", "purge"):
        assert re.search(rf"^== step [^\n]*{re.escape(step)}[^\n]*: [\d.]+ s$", log, re.M), step
    assert re.search(r"^== apt: After this operation, [\d.,]+ [kMG]B", log, re.M)


def test_the_gui_shows_the_pair_with_readable_text(fresh_debian):
    code, log, out = fresh_debian
    verdict = (out / "screen-text.txt").read_text() if (out / "screen-text.txt").exists() else ""
    assert verdict.startswith("screen_text: readable text"), verdict + log[-4000:]
    assert re.search(r'^== GUI window: .*"edited\.png', log, re.M)  # the pair was opened


def test_nothing_is_left_after_the_purge(fresh_debian):
    code, log, out = fresh_debian
    assert (out / "files-after.txt").exists(), log[-4000:]
    before = (out / "files-before.txt").read_text().splitlines()
    after = (out / "files-after.txt").read_text().splitlines()
    assert after == before and any(line.startswith("./opt ") for line in after)  # /opt kept
    packages = (out / "packages-after.txt").read_text()
    assert packages == (out / "packages-before.txt").read_text() and "editedid" not in packages

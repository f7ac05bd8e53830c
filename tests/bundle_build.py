"""The Linux bundle and its .deb, built ONCE per test run for every slow test that needs
them (tests/test_packaging.py, tests/test_fresh_debian.py): `linux_bundle_check()` runs
packaging/check_linux_bundle.sh (about 10-20 min on 2 cores) the first time it is called
and returns the same log afterwards."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def linux_bundle_check() -> tuple[int, str]:
    """(exit status, log) of packaging/check_linux_bundle.sh."""
    out = subprocess.run(
        ["bash", str(ROOT / "packaging" / "check_linux_bundle.sh")],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=ROOT,
    )
    return out.returncode, out.stdout + out.stderr


def built_deb(log: str) -> Path:
    """The .deb the check built (its "== deb: N MB PATH" line)."""
    return Path(re.search(r"== deb: \d+ MB (\S+\.deb)", log).group(1))

"""The dependency lock: packaging/lock/<platform>-<variant>.txt, one hash-pinned requirements
file per platform (linux, windows) and PyTorch variant (cpu, cu126, cu128), made by
packaging/refresh_lock.sh (uv pip compile --generate-hashes) and installed with
`pip install --require-hashes` (packaging/install.sh, packaging/build_windows.ps1).

This module reads the lock and compares it with an environment; tests/test_lock.py and the
install scripts use it. From the command line, in the environment to check:

    python packaging/lock_check.py verify LOCK   # exit 1 unless it holds exactly LOCK's pins
    python packaging/lock_check.py extras LOCK   # installed distributions LOCK does not list
    python packaging/lock_check.py stale LOCK    # installed at another version than LOCK's
    python packaging/lock_check.py which         # the lock file for this platform + torch

EDITEDID_LOCK_DIR names another lock folder (refresh_lock.sh tests a new lock with it).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCK_DIR = ROOT / "packaging" / "lock"
PLATFORMS = ("linux", "windows")
VARIANTS = ("cpu", "cu126", "cu128")
# The locks are resolved for this Python (the release's; CI's): torch's hashes are cp311's.
LOCK_PYTHON = "3.11"
# Installed but never locked: the installer itself and this project (pip install --no-deps -e .).
NOT_LOCKED = frozenset({"pip", "editedid-desktop"})
# Packages that may differ between the locks: the PyTorch build of each variant.
VARIANT_PACKAGES = frozenset({"torch"})
_HASH = re.compile(r"--hash=(sha256):([0-9a-f]{64})\b")
_BAD_HASH = re.compile(r"--hash=(?!sha256:[0-9a-f]{64}\b)\S*")


def lock_dir() -> Path:
    return Path(os.environ.get("EDITEDID_LOCK_DIR") or DEFAULT_LOCK_DIR)


def lock_path(platform: str, variant: str, folder: Path | None = None) -> Path:
    if platform not in PLATFORMS or variant not in VARIANTS:
        raise ValueError(f"no lock for {platform}-{variant}: {PLATFORMS} x {VARIANTS}")
    return (folder or lock_dir()) / f"{platform}-{variant}.txt"


def lock_files(folder: Path | None = None) -> dict[str, Path]:
    """The lock files present, by name (linux-cpu, ...)."""
    folder = folder or lock_dir()
    return {p.stem: p for p in sorted(folder.glob("*-*.txt"))}


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503)
    version: str
    hashes: tuple[str, ...]
    line: int  # where its requirement starts in the file (1-based)


class LockError(ValueError):
    """A lock file that is not a list of name==version requirements with sha256 hashes."""


def _logical_lines(text: str):
    """(first line number, text) of each requirement, continuation lines joined and
    comments dropped."""
    start, parts = None, []
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if start is None and not line.strip():
            continue
        if start is None:
            start = number
        more = line.endswith("\\")
        parts.append(line[:-1] if more else line)
        if not more:
            yield start, " ".join(p.strip() for p in parts).strip()
            start, parts = None, []
    if start is not None:
        yield start, " ".join(p.strip() for p in parts).strip()


def read_lock(path: Path) -> dict[str, Pin]:
    """Every pin of a lock file, by canonical name. Raises LockError on an option line,
    a requirement that is not `name==version`, a malformed hash or a repeated name."""
    pins: dict[str, Pin] = {}
    for number, line in _logical_lines(Path(path).read_text(encoding="utf-8")):
        where = f"{path}:{number}"
        if line.startswith("-"):
            raise LockError(f"{where}: options belong on pip's command line, not in the lock")
        bad = _BAD_HASH.search(line)
        if bad:
            raise LockError(f"{where}: not a sha256 hash: {bad.group(0)}")
        hashes = tuple(h for _, h in _HASH.findall(line))
        requirement = Requirement(_HASH.sub("", line).strip())
        specs = list(requirement.specifier)
        if requirement.url or len(specs) != 1 or specs[0].operator != "==":
            raise LockError(f"{where}: {requirement} is not pinned with ==")
        name = canonicalize_name(requirement.name)
        if name in pins:
            raise LockError(f"{where}: {name} is pinned twice")
        pins[name] = Pin(name, specs[0].version, hashes, number)
    return pins


def unhashed(pins: dict[str, Pin]) -> list[str]:
    return [f"{p.name}=={p.version} (line {p.line})" for p in pins.values() if not p.hashes]


def installed() -> dict[str, str]:
    """name -> version of every distribution installed in this environment's
    site-packages (what pip put there). Not every folder on sys.path: Ray, once imported,
    puts its vendored packages (ray/thirdparty_files: colorama, ...) on it."""
    import sysconfig

    folders = sorted({sysconfig.get_paths()[key] for key in ("purelib", "platlib")})
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=folders):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def differences(have: dict[str, str], pins: dict[str, Pin]) -> list[str]:
    """What keeps `have` (name -> version) from being exactly the lock."""
    out = []
    for name, pin in sorted(pins.items()):
        if name not in have:
            out.append(f"{name}=={pin.version}: locked, not installed")
        elif Version(have[name]) != Version(pin.version):
            out.append(f"{name}: installed {have[name]}, locked {pin.version}")
    for name in sorted(set(have) - set(pins) - NOT_LOCKED):
        out.append(f"{name} {have[name]}: installed, not in the lock")
    return out


def marker_environment(platform: str) -> dict[str, str]:
    """The marker values of a lock's target (x86-64, CPython LOCK_PYTHON)."""
    env = dict(default_environment())
    env.update(
        python_version=LOCK_PYTHON,
        python_full_version=f"{LOCK_PYTHON}.0",
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    if platform == "windows":
        env.update(
            sys_platform="win32", platform_system="Windows", os_name="nt", platform_machine="AMD64"
        )
    else:
        env.update(
            sys_platform="linux",
            platform_system="Linux",
            os_name="posix",
            platform_machine="x86_64",
        )
    return env


def project_requirements(pyproject: Path, extras=("dev",)) -> list[Requirement]:
    project = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def range_problems(
    pins: dict[str, Pin], requirements: list[Requirement], platform: str, extras=("dev",)
) -> list[str]:
    """Requirements of pyproject.toml (for `platform`, with `extras`) the lock misses or
    pins outside their range."""
    out = []
    for req in requirements:
        env = marker_environment(platform)
        if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in ("", *extras)):
            continue
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            out.append(f"{req}: not in the lock")
        elif not req.specifier.contains(pin.version, prereleases=True):
            out.append(f"{req}: locked {pin.version}")
    return out


def disagreements(locks: dict[str, dict[str, Pin]]) -> list[str]:
    """Packages two locks pin to different versions (the variant's torch excepted)."""
    out = []
    names = sorted(locks)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for name in sorted((set(locks[a]) & set(locks[b])) - VARIANT_PACKAGES):
                va, vb = locks[a][name].version, locks[b][name].version
                if Version(va) != Version(vb):
                    out.append(f"{name}: {a} {va}, {b} {vb}")
    return out


def this_platform() -> str:
    return "windows" if sys.platform == "win32" else "linux"


def torch_variant(version: str, platform: str) -> str | None:
    """cpu / cuXYZ from an installed torch version (2.13.0+cpu, 2.13.0+cu128; PyPI's
    Windows wheel, 2.13.0, is a CPU build; PyPI's Linux wheel is a CUDA 13 build: None)."""
    local = Version(version).local
    if local is None:
        return "cpu" if platform == "windows" else None
    return local if local in VARIANTS else None


def lock_for_this_environment() -> Path:
    platform = this_platform()
    variant = os.environ.get("EDITEDID_TORCH")
    if variant in (None, "", "auto"):
        try:
            variant = torch_variant(importlib.metadata.version("torch"), platform)
        except importlib.metadata.PackageNotFoundError:
            variant = None
    if variant is None:
        raise LockError(
            "torch is not one of the locked builds (cpu, cu126, cu128): "
            "set EDITEDID_TORCH to name the variant"
        )
    return lock_path(platform, variant)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("verify", "exit 1 unless this environment holds exactly LOCK"),
        ("extras", "print installed distributions LOCK does not list"),
        ("stale", "print installed distributions at another version than LOCK's"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("lock", type=Path)
    sub.add_parser("which", help="print the lock file for this platform and torch")
    args = parser.parse_args(argv)
    if args.command == "which":
        print(lock_for_this_environment())
        return 0
    pins = read_lock(args.lock)
    have = installed()
    if args.command == "extras":
        for name in sorted(set(have) - set(pins) - NOT_LOCKED):
            print(name)
        return 0
    if args.command == "stale":
        for name in sorted(n for n in set(have) & set(pins) if have[n] != pins[n].version):
            print(name)
        return 0
    problems = differences(have, pins) + [f"no hash: {x}" for x in unhashed(pins)]
    for problem in problems:
        print(f"{args.lock.name}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{len(pins)} distributions, exactly as locked in {args.lock}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""The dependency lock (packaging/lock/, made by packaging/refresh_lock.sh; read by
packaging/lock_check.py): this venv holds exactly the lock of its platform and PyTorch
variant, every pin carries a sha256 hash, every lock satisfies pyproject.toml's ranges and
the locks agree on the packages they share. No network. Each check is also shown to fail on
a changed copy of a lock or of the installed set."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("lock_check", ROOT / "packaging" / "lock_check.py")
lock_check = importlib.util.module_from_spec(_spec)
sys.modules["lock_check"] = lock_check
_spec.loader.exec_module(lock_check)

LOCKS = lock_check.lock_files()
PYPROJECT = ROOT / "pyproject.toml"


def _edited_copy(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text(encoding="utf-8")
    assert old in text
    copy = tmp_path / source.name
    copy.write_text(text.replace(old, new, 1), encoding="utf-8")
    return copy


def test_the_lock_files_are_named_for_a_platform_and_a_variant():
    # linux-cpu is what CI installs; windows-cpu is the Windows CPU installer's.
    assert {"linux-cpu", "windows-cpu"} <= set(LOCKS)
    for name in LOCKS:
        platform, variant = name.split("-", 1)
        assert platform in lock_check.PLATFORMS and variant in lock_check.VARIANTS, name
    with pytest.raises(ValueError):
        lock_check.lock_path("macos", "cpu")


def test_this_environment_holds_exactly_its_lock():
    path = lock_check.lock_for_this_environment()
    assert path.is_file(), f"no lock for this platform and torch: {path}"
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" == lock_check.LOCK_PYTHON
    assert lock_check.differences(lock_check.installed(), lock_check.read_lock(path)) == []


def test_a_different_installation_is_caught(tmp_path):
    path = LOCKS["linux-cpu"]
    pins = lock_check.read_lock(path)
    exact = {name: pin.version for name, pin in pins.items()}
    assert lock_check.differences(exact, pins) == []
    numpy = pins["numpy"].version
    changed = lock_check.read_lock(
        _edited_copy(tmp_path, path, f"numpy=={numpy} ", "numpy==1.26.4 ")
    )
    assert lock_check.differences(exact, changed) == [f"numpy: installed {numpy}, locked 1.26.4"]
    more = {**exact, "pip": "26.3", "editedid-desktop": "0.1.0", "six": "1.17.0"}
    assert lock_check.differences(more, pins) == ["six 1.17.0: installed, not in the lock"]
    fewer = {k: v for k, v in exact.items() if k != "scipy"}
    assert lock_check.differences(fewer, pins) == [
        f"scipy=={pins['scipy'].version}: locked, not installed"
    ]
    # 2.13.0+cpu and 2.13.0 (PyPI's CUDA 13 build on Linux) are different builds
    torch = {**exact, "torch": pins["torch"].version.split("+")[0]}
    assert lock_check.differences(torch, pins) != []


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_pin_carries_a_sha256_hash(name):
    pins = lock_check.read_lock(LOCKS[name])
    assert len(pins) > 50 and "torch" in pins
    assert lock_check.unhashed(pins) == []


def test_a_lock_without_hashes_or_exact_pins_is_refused(tmp_path):
    path = LOCKS["linux-cpu"]
    text = path.read_text(encoding="utf-8")
    first = next(line for line in text.splitlines() if line.startswith("    --hash=sha256:"))
    scipy = lock_check.read_lock(path)["scipy"].version
    # every hash of scipy's pin dropped: still a pin, but an unhashed one
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"scipy=={scipy} "))
    end = at + 1
    while lines[end].startswith("    --hash="):
        end += 1
    stripped = tmp_path / "stripped.txt"
    stripped.write_text("\n".join(lines[:at] + [f"scipy=={scipy}"] + lines[end:]) + "\n")
    assert lock_check.unhashed(lock_check.read_lock(stripped)) == [
        f"scipy=={scipy} (line {at + 1})"
    ]
    for old, new, why in (
        (first, "    --hash=sha256:abc \\", "not a sha256 hash"),
        (first, "    --hash=md5:" + "0" * 32 + " \\", "not a sha256 hash"),
        (f"scipy=={scipy} ", "scipy>=1.11 ", "not pinned with =="),
        ("accelerate==", "--index-url https://example.org/simple\naccelerate==", "options"),
        ("accelerate==", f"scipy=={scipy}\naccelerate==", "pinned twice"),
    ):
        with pytest.raises(lock_check.LockError, match=why):
            lock_check.read_lock(_edited_copy(tmp_path, path, old, new))


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_lock_satisfies_the_ranges_of_pyproject(name):
    requirements = lock_check.project_requirements(PYPROJECT)
    assert any(r.name == "uv" for r in requirements)  # the [dev] extra is included
    pins = lock_check.read_lock(LOCKS[name])
    assert lock_check.range_problems(pins, requirements, name.split("-")[0]) == []


def test_a_lock_outside_the_ranges_is_caught():
    from packaging.requirements import Requirement

    pins = lock_check.read_lock(LOCKS["linux-cpu"])
    requirements = lock_check.project_requirements(PYPROJECT)
    stricter = [*requirements, Requirement("transformers>=99")]
    found = lock_check.range_problems(pins, stricter, "linux")
    assert found == [f"transformers>=99: locked {pins['transformers'].version}"]
    missing = {k: v for k, v in pins.items() if k != "superqt"}
    assert lock_check.range_problems(missing, requirements, "linux") == [
        "superqt>=0.6: not in the lock"
    ]
    # a requirement for another platform does not apply
    windows_only = [Requirement('pywin32-ctypes>=0.2; sys_platform == "win32"')]
    assert lock_check.range_problems(pins, windows_only, "linux") == []
    assert lock_check.range_problems(pins, windows_only, "windows") != []


def test_the_locks_agree_on_every_package_they_share(tmp_path):
    locks = {name: lock_check.read_lock(path) for name, path in LOCKS.items()}
    assert lock_check.disagreements(locks) == []
    # they do share the stack; only torch's build differs
    shared = set.intersection(*(set(pins) for pins in locks.values()))
    assert {"diffusers", "transformers", "pyside6", "numpy", "torch"} <= shared
    assert locks["linux-cpu"]["torch"].version.endswith("+cpu")
    pillow = locks["linux-cpu"]["pillow"].version
    other = lock_check.read_lock(
        _edited_copy(tmp_path, LOCKS["linux-cpu"], f"pillow=={pillow} ", "pillow==10.0.0 ")
    )
    assert lock_check.disagreements({"linux-cpu": locks["linux-cpu"], "other": other}) == [
        f"pillow: linux-cpu {pillow}, other 10.0.0"
    ]


def test_the_install_scripts_check_fails_on_a_changed_lock(tmp_path):
    """`lock_check.py verify`, which packaging/install.sh runs last, in this venv."""
    path = lock_check.lock_for_this_environment()
    script = ROOT / "packaging" / "lock_check.py"
    good = subprocess.run(
        [sys.executable, str(script), "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    assert "exactly as locked" in good.stdout
    version = lock_check.read_lock(path)["scipy"].version
    changed = _edited_copy(tmp_path, path, f"scipy=={version} ", "scipy==1.11.0 ")
    bad = subprocess.run(
        [sys.executable, str(script), "verify", str(changed)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert f"scipy: installed {version}, locked 1.11.0" in bad.stderr


def test_install_with_the_lock_required_refuses_a_variant_without_one_before_anything(tmp_path):
    venv = tmp_path / "venv"
    out = subprocess.run(
        ["bash", str(ROOT / "packaging" / "install.sh")],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHON": sys.executable,
            "EDITEDID_TORCH": "cu126",
            "EDITEDID_LOCK": "on",  # unset: a developer's GPU install falls back to unlocked
            "EDITEDID_VENV": str(venv),
            "EDITEDID_LOCK_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    missing = f"no dependency lock for linux-cu126: {tmp_path}/linux-cu126.txt is missing"
    assert missing in out.stderr
    assert not venv.exists()
    bad = subprocess.run(
        ["bash", str(ROOT / "packaging" / "install.sh")],
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "EDITEDID_LOCK": "maybe"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "EDITEDID_LOCK must be on" in bad.stderr


def _other_python() -> str | None:
    """An interpreter that runs and is not Python 3.11 (pyenv's shims may not run)."""
    names = ("python3.12", "python3.13")
    found = [shutil.which(n) for n in names]
    found += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.1[23]*/bin/python3"))
    for exe in filter(None, found):
        try:
            out = subprocess.run(
                [exe, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() != "(3, 11)":
            return exe
    return None


OTHER_PYTHON = _other_python()


@pytest.mark.skipif(OTHER_PYTHON is None, reason="needs a Python other than 3.11")
def test_install_with_the_lock_required_refuses_another_python(tmp_path):
    out = subprocess.run(
        ["bash", str(ROOT / "packaging" / "install.sh")],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHON": OTHER_PYTHON,
            "EDITEDID_LOCK": "on",
            "EDITEDID_TORCH": "cpu",
            "EDITEDID_VENV": str(tmp_path / "venv"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "EDITEDID_LOCK=on, but the lock (packaging/lock/) is made for Python 3.11" in out.stderr
    assert not (tmp_path / "venv").exists()


def test_the_windows_build_installs_its_lock_with_hashes():
    """build_windows.ps1 runs on Windows runners only: its install steps, read."""
    ps1 = (ROOT / "packaging" / "build_windows.ps1").read_text(encoding="utf-8")
    assert '$Lock = Join-Path $Root "packaging\\lock\\windows-$Torch.txt"' in ps1
    assert "& $Py -m pip install --require-hashes -r $Lock @Extra" in ps1
    assert "packaging\\lock_check.py verify $Lock" in ps1
    assert '& $Py -m pip install --no-deps --no-build-isolation "."' in ps1
    # the missing-lock stop comes before anything is installed
    assert ps1.index("-not (Test-Path $Lock)") < ps1.index("upgrade pip")


def test_the_lock_scripts_parse_and_explain_themselves():
    for script in ("install.sh", "refresh_lock.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "packaging" / script)], check=True)
    usage = subprocess.run(
        ["bash", str(ROOT / "packaging" / "refresh_lock.sh"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert usage.returncode == 0 and "--keep" in usage.stdout and "--partial" in usage.stdout
    wrong = subprocess.run(
        ["bash", str(ROOT / "packaging" / "refresh_lock.sh"), "--upgrade-all"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert wrong.returncode == 1 and "unknown argument '--upgrade-all'" in wrong.stderr


def test_install_removes_first_what_the_lock_moves(tmp_path):
    """`stale` names what a reused venv holds at another version than the lock, which
    install.sh uninstalls before installing the lock (PySide6 lost its __init__.py when
    6.12.0 was replaced in place by 6.11.3: its four distributions share one folder)."""
    path = LOCKS["linux-cpu"]
    scipy = lock_check.read_lock(path)["scipy"].version
    copy = _edited_copy(tmp_path, path, f"scipy=={scipy} ", "scipy==1.11.0 ")
    run = [sys.executable, str(ROOT / "packaging" / "lock_check.py"), "stale"]
    assert subprocess.run([*run, str(path)], capture_output=True, text=True).stdout == ""
    moved = subprocess.run([*run, str(copy)], capture_output=True, text=True)
    assert moved.returncode == 0 and moved.stdout.split() == ["scipy"]
    script = (ROOT / "packaging" / "install.sh").read_text()
    assert script.index("lock_check.py stale") < script.index(
        'pip install --require-hashes -r "$lockfile"'
    )


def test_what_is_installed_is_read_from_site_packages_only(monkeypatch, tmp_path):
    """Ray puts ray/thirdparty_files (colorama, ...) on sys.path when imported: that is
    not an installed distribution (the lock check failed after the cluster tests)."""
    vendored = tmp_path / "thirdparty_files" / "colorama-0.4.6.dist-info"
    vendored.mkdir(parents=True)
    (vendored / "METADATA").write_text("Metadata-Version: 2.1\nName: colorama\nVersion: 0.4.6\n")
    monkeypatch.syspath_prepend(str(vendored.parent))
    assert "colorama" in {d.metadata["Name"] for d in importlib.metadata.distributions()}
    assert "colorama" not in lock_check.installed()

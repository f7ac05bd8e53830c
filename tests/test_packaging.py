"""Packaging: static checks of the PyInstaller spec and installers (fast, default run),
and the real Linux bundle build + --self-test (slow; `pytest -m slow`)."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
SPEC = PACKAGING / "editedid.spec"


def _spec_tree() -> ast.Module:
    return ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
    ]


def _string_list(tree: ast.AST, target: str) -> list[str]:
    """String elements of every list literal assigned or +='d to `target` in the spec."""
    out: list[str] = []
    for node in ast.walk(tree):
        value = None
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == target for t in node.targets
        ):
            value = node.value
        elif isinstance(node, ast.AugAssign) and getattr(node.target, "id", None) == target:
            value = node.value
        if isinstance(value, ast.List):
            out += [e.value for e in value.elts if isinstance(e, ast.Constant)]
    return out


def test_spec_is_a_one_folder_build_of_the_entry_script():
    text = SPEC.read_text(encoding="utf-8")
    tree = _spec_tree()
    assert len(_calls(tree, "COLLECT")) == 1, "one-folder build: exactly one COLLECT"
    for exe in _calls(tree, "EXE"):  # one-file would pack a.binaries into the EXE
        assert not any(isinstance(a, ast.Attribute) and a.attr == "binaries" for a in exe.args)
    assert "exclude_binaries=True" in text
    assert "onefile" not in text.replace("one-file", "")
    (analysis,) = _calls(tree, "Analysis")
    assert "'editedid_entry.py'" in ast.unparse(analysis.args[0])
    entry = PACKAGING / "editedid_entry.py"
    assert entry.is_file()
    entry_text = entry.read_text(encoding="utf-8")
    for flag in (
        "--self-test",
        "--cli",
        "run_self_test",
        "from engine.cli import main",
        "editedid_desktop.app",
    ):
        assert flag in entry_text


def test_spec_bundles_resources_models_data_and_metadata():
    text = SPEC.read_text(encoding="utf-8")
    assert '(str(ROOT / "resources"), "resources")' in text  # engine/resources.py: _MEIPASS
    assert 'collect_data_files("insightface"' in text
    assert 'collect_data_files("face_recognition_models", includes=["models/*.dat"])' in text
    assert 'tomllib.load(f)["project"]["version"]' in text  # version from pyproject
    assert "upx=False" in text
    tree = _spec_tree()
    metadata = _string_list(tree, "METADATA")
    for needed in (
        "torch",
        "diffusers",
        "transformers",
        "huggingface_hub",
        "safetensors",
        "tokenizers",
        "numpy",
        "insightface",
        "onnxruntime",
        "requests",
        "filelock",
    ):
        assert needed in metadata
    for dist in metadata:
        if dist in ("hf-xet", "editedid-desktop"):
            continue  # optional / this checkout's own (present only when pip-installed)
        importlib.metadata.distribution(dist)  # raises PackageNotFoundError
    modes = next(
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "module_collection_mode"
    )
    modes = ast.literal_eval(modes)
    assert modes["torch"] == modes["transformers"] == "pyz+py"


def test_spec_hidden_imports_and_collected_packages_exist():
    tree = _spec_tree()
    hidden = _string_list(tree, "hiddenimports")
    collected = [
        c.args[0].value
        for c in _calls(tree, "collect_submodules")
        if c.args and isinstance(c.args[0], ast.Constant)
    ]
    loop = [
        e.value
        for n in ast.walk(tree)
        if isinstance(n, ast.For) and isinstance(n.iter, ast.Tuple)
        for e in n.iter.elts
        if isinstance(e, ast.Constant)
    ]
    names = hidden + collected + loop
    assert {"engine", "editedid_desktop", "diffusers.models", "transformers.models.clip"} <= set(
        names
    )
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    assert not missing, f"hidden imports that do not exist: {missing}"
    excludes = set(_string_list(tree, "excludes"))
    assert {"tkinter", "IPython", "pytest", "torchvision"} <= excludes
    used = {
        "torch",
        "diffusers",
        "transformers",
        "PySide6",
        "cv2",
        "insightface",
        "dlib",
        "onnxruntime",
        "scipy",
        "numpy",
        "PIL",
        "superqt",
        "safetensors",
        "huggingface_hub",
    }
    assert not used & excludes


def test_icons_and_installer_scripts_are_there():
    icons = ROOT / "resources" / "icons"
    for name in ("editedid.png", "editedid.ico", "editedid.svg"):
        assert (icons / name).is_file(), name
    iss = (PACKAGING / "editedid.iss").read_text(encoding="utf-8")
    for needed in (
        "DiskSpanning=yes",
        "vc_redist.x64.exe",
        "PrivilegesRequiredOverridesAllowed",
        "UninstallDisplayIcon",
        "desktopicon",
        "{group}",
        r"dist\EditedID",
    ):
        assert needed in iss, needed
    ps1 = (PACKAGING / "build_windows.ps1").read_text(encoding="utf-8")
    for needed in ('"cpu", "cu126", "cu128"', "--self-test", "ISCC", "editedid.spec"):
        assert needed in ps1, needed
    for script in ("build_linux.sh", "check_linux_bundle.sh"):
        subprocess.run(["bash", "-n", str(PACKAGING / script)], check=True)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version


def test_entry_script_dispatches_to_the_cli():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(
        [sys.executable, str(PACKAGING / "editedid_entry.py"), "--cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "restore" in out.stdout


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds the Linux bundle")
def test_linux_bundle_builds_and_passes_its_self_test():
    out = subprocess.run(
        ["bash", str(PACKAGING / "check_linux_bundle.sh")],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=ROOT,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]
    assert "RESULT: PASS" in log and "bundle size:" in log

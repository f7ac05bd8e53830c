"""Safety (issue 6, item 6): no network unless the user starts a download, no telemetry.

Covered elsewhere, not repeated here:
- pickle checkpoints refused without allow_pickle, loaded with a warning when allowed:
  tests/test_models.py::test_pickle_only_folder (folder with .bin only),
  ::test_pickle_single_file_refused_without_reading (.ckpt) and
  ::test_single_file_pickle_refused;
- zip extraction cannot write outside its target, interrupted downloads resume, wrong
  hashes are rejected and removed: tests/test_faces.py (download tests on 127.0.0.1).
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "editedid_desktop")
TELEMETRY = ("sentry_sdk", "posthog", "mixpanel", "segment", "analytics", "amplitude",
             "bugsnag", "rollbar", "newrelic", "datadog", "ddtrace", "opentelemetry")  # fmt: skip
DOWNLOAD_HOSTS = ("huggingface.co", "github.com")  # the only places a download may go


def _sources() -> list[Path]:
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    return files + sorted((ROOT / "packaging").glob("*.py"))


def _block_network(monkeypatch) -> list[str]:
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1:] if args and isinstance(args[0], socket.socket) else args))
        raise OSError("network blocked by test_safety")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)  # DNS lookups count too
    return attempts


# Run in a fresh interpreter so every module is really imported (not cached by earlier
# tests), with the user's offline switches removed: imports must be quiet on their own.
_IMPORT_ALL = r"""
import importlib, json, pkgutil, socket, sys
attempts, failures, imported = [], {}, []
def refuse(*args, **kwargs):
    attempts.append(repr(args[1:]))
    raise OSError("network blocked")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
for package in sys.argv[1:]:
    root = importlib.import_module(package)
    names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
    for name in names:
        try:
            importlib.import_module(name)
            imported.append(name)
        except Exception as error:  # noqa: BLE001
            failures[name] = f"{type(error).__name__}: {error}"
print(json.dumps({"attempts": attempts, "failures": failures, "imported": imported}))
"""


def test_importing_every_module_opens_no_connection():
    env = {k: v for k, v in os.environ.items() if "OFFLINE" not in k}
    env["QT_QPA_PLATFORM"] = "offscreen"
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, *PACKAGES],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["attempts"] == [], result["attempts"]
    assert result["failures"] == {}, result["failures"]
    expected = {
        p.parent.name if p.stem == "__init__" else f"{p.parent.name}.{p.stem}"
        for p in _sources()
        if p.parent.name in PACKAGES
    }
    assert expected <= set(result["imported"]), expected - set(result["imported"])


def test_classic_restore_of_a_real_photo_needs_no_network(tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    from engine.cli.commands import EXIT_OK, main
    from tests.helpers import sample_photo

    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    attempts = _block_network(monkeypatch)
    photo = Image.open(sample_photo("grace_hopper")).convert("RGB")
    original, edited = tmp_path / "o.jpg", tmp_path / "e.png"
    photo.save(original)
    array = np.asarray(photo).copy()
    array[180:205, 160:360] //= 3
    Image.fromarray(array).save(edited)
    for backend in ("auto",):  # insightface when its models are here, else dlib; no download
        out = tmp_path / f"r-{backend}.png"
        code = main(["restore", "--original", str(original), "--edited", str(edited),
                     "--out", str(out), "--mode", "classic", "--face-backend", backend,
                     "--resolution", "128", "--quiet"])  # fmt: skip
        assert code == EXIT_OK, capsys.readouterr().err
        assert out.is_file()
    assert attempts == []


def test_no_module_imports_a_telemetry_package():
    offenders = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in (
                "import_module",
                "__import__",
            ):
                names = [a.value for a in node.args if isinstance(a, ast.Constant)]
            else:
                continue
            for name in names:
                if str(name).split(".")[0] in TELEMETRY:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert offenders == []


def test_every_url_in_the_code_is_a_model_download_or_a_licence_page():
    import re

    urls = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"https?://([^/\"'\s)]+)", text):
            if text[: match.start()].endswith('xmlns="'):
                continue  # an XML namespace is a name, never fetched
            urls.append((path.relative_to(ROOT), match.group(1)))
    others = [(p, host) for p, host in urls if not host.endswith(DOWNLOAD_HOSTS)]
    others = [(p, h) for p, h in others if h not in ("donottrack.sh",)]  # docs only
    # this computer (a private Ray's plain HTTP is sent to a closed local port): never out
    others = [(p, h) for p, h in others if h.rsplit(":", 1)[0] not in ("127.0.0.1", "localhost")]
    assert others == [], others


def test_privacy_defaults_switch_off_hub_telemetry():
    from engine.privacy import PRIVACY_ENV, apply_privacy_defaults

    env = {"HF_HUB_DISABLE_TELEMETRY": "0"}
    assert apply_privacy_defaults(env) == PRIVACY_ENV
    assert env["HF_HUB_DISABLE_TELEMETRY"] == "1" and env["DO_NOT_TRACK"] == "1"
    # huggingface_hub reads the switch at import: check it in a fresh interpreter
    code = ("from engine.privacy import apply_privacy_defaults; apply_privacy_defaults(); "
            "import huggingface_hub.constants as c; print(c.HF_HUB_DISABLE_TELEMETRY)")  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if "TELEMETRY" not in k and k != "DO_NOT_TRACK"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.stdout.strip() == "True", done.stderr[-2000:]


def test_entry_points_apply_the_privacy_defaults():
    """`import engine` (CLI, batch, app all import it) switches telemetry off."""
    init = (ROOT / "engine" / "__init__.py").read_text(encoding="utf-8")
    app = (ROOT / "editedid_desktop" / "app.py").read_text(encoding="utf-8")
    assert "apply_privacy_defaults" in init and "apply_privacy_defaults" in app
    clean = {k: v for k, v in os.environ.items() if "TELEMETRY" not in k and k != "DO_NOT_TRACK"}
    code = "import os, engine; print(os.environ.get('HF_HUB_DISABLE_TELEMETRY'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.stdout.strip() == "1", done.stderr[-2000:]

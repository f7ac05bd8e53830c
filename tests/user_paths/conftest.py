"""Fixtures of the user-path tier: an X display with a window manager, the photo pairs, and
a factory that starts the real `editedid` in a throw-away home on the tiny SD model.

Every test module here is marked `user` (pytestmark; deselected from the default run:
`pytest -m user`). The tier needs Xvfb, openbox, xdotool, xprop and ImageMagick's
`import` (Debian: xvfb openbox xdotool x11-utils imagemagick) and the `editedid` console
script of the install: a missing one fails the tier, naming what is missing (the tier
runs only when asked for, so its tools are hard dependencies then).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.user_paths.driver import RunningApp, XDisplay, editedid_command, missing_tools
from tests.user_paths.photos import PAIRS


def _require(problem: str) -> None:
    """The tier runs only when asked for (-m user): what it needs is a hard dependency
    then, and a missing one fails it, naming what to install (never a silent skip)."""
    pytest.fail(f"user-path tier: {problem} (a hard dependency of the tier)")


@pytest.fixture(scope="session")
def x_display(tmp_path_factory) -> Iterator[XDisplay]:
    missing = missing_tools()
    if missing:
        _require(
            f"missing {', '.join(missing)} (apt-get install xvfb openbox xdotool x11-utils "
            "imagemagick)"
        )
    if not editedid_command().exists():
        _require(f"no {editedid_command()} (install the project: bash packaging/install.sh)")
    display = XDisplay(tmp_path_factory.mktemp("xdisplay"))
    yield display
    display.stop()


@pytest.fixture(scope="session")
def pairs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """name -> (original, edited) files (photos.PAIRS, written once per session)."""
    folder = tmp_path_factory.mktemp("user-photos")
    return {name: make(folder) for name, make in PAIRS.items()}


def write_settings(home: Path, model_dir: Path, models_dir: Path) -> None:
    """The app's QSettings file in the throw-away XDG_CONFIG_HOME: the tiny model, CPU,
    fp32, dlib faces; the user's real settings are never read nor written."""
    from editedid_desktop.settings import APPLICATION, ORGANIZATION, Settings

    settings = Settings.from_ini(home / ".config" / ORGANIZATION / f"{APPLICATION}.conf")
    settings.model_source = str(model_dir)
    settings.device = "cpu"
    settings.precision = "fp32"
    settings.models_dir = str(models_dir)
    settings.face_backend = "dlib"
    settings.sync()


@pytest.fixture
def start_app(x_display, tiny_sd_dir, tmp_path, request):
    """start_app(files) -> RunningApp: `editedid FILE...` in a fresh home; killed at the
    end if the test did not quit it. Screenshots go to <tmp>/shots (named in failures)."""
    started: list[RunningApp] = []

    def start(files: list[Path], name: str = "home") -> RunningApp:
        home = tmp_path / name
        home.mkdir()
        write_settings(home, tiny_sd_dir, tmp_path / "models")
        shots = home / "shots"
        shots.mkdir()
        models = {"EDITEDID_MODELS_DIR": str(tmp_path / "models")}
        app = RunningApp(x_display, home, files, shots, models)
        started.append(app)
        return app

    yield start
    for app in started:
        app.kill()
    if os.environ.get("EDITEDID_KEEP_SHOTS"):  # keep the screenshots of a passing run
        keep = Path(os.environ["EDITEDID_KEEP_SHOTS"]) / request.node.name
        for app in started:
            shutil.copytree(app.shots, keep / app.home.name, dirs_exist_ok=True)

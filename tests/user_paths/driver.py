"""Run the real `editedid` process on an X display and drive it as a person does.

`XDisplay` is an Xvfb server (1920x1080x24, its number chosen by Xvfb itself through
-displayfd) with the openbox window manager. `RunningApp` is one `editedid` process started
as the desktop entry starts it (`Exec=editedid %F`: the console script, the files as
arguments), in a throw-away home (HOME, XDG_CONFIG_HOME, XDG_DATA_HOME, models folder), with
PYTHONFAULTHANDLER=1 and the app's opt-in state file (EDITEDID_STATE_FILE, see
editedid_desktop/state_probe.py). Input goes through the X server as real events (xdotool:
XTEST key presses, pointer motion, button 4/5 for the wheel); screenshots are
`import -window root`.

Every wait checks that the process is alive and that its UI thread answers: the state file
is rewritten from the UI thread's event loop several times a second, so a file that stops
changing for RESPONSIVE_S is a frozen window. A crash or a freeze fails at once with what is
known: exit code, the end of stderr, the app's crash report, `py-spy dump --native` of a
frozen process, the last screenshot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SCREEN = "1920x1080x24"
RESPONSIVE_S = 2.0  # after every step the UI thread answers within this (issue 20)
# A UI thread unheard this long while the test waits for work (an analysis, a restore) is a
# freeze. Shorter silences are measured (RunningApp.longest_silence) and reported.
FREEZE_S = float(os.environ.get("EDITEDID_TEST_FREEZE_S", "20"))
START_S = 60.0  # until the window first shows (Python, Qt, the app's imports)
TOOLS = ("Xvfb", "openbox", "xdotool", "xprop", "import")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def editedid_command() -> Path:
    """The console script next to this Python (`.venv/bin/editedid`)."""
    return Path(sys.executable).with_name("editedid")


def py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


class AppFailure(AssertionError):
    """The app crashed, froze or did not show what a step should."""


class XDisplay:
    """An Xvfb server with openbox on it; stop() ends both."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        read_fd, write_fd = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", SCREEN, "-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "xvfb.log", "wb"),  # noqa: SIM115 - lives with the server
        )
        os.close(write_fd)
        number = b""
        with os.fdopen(read_fd, "rb") as pipe:  # Xvfb writes the number once it listens
            while not number.endswith(b"\n"):
                chunk = pipe.read(1)
                if not chunk:
                    raise RuntimeError(f"Xvfb did not start: {(workdir / 'xvfb.log').read_text()}")
                number += chunk
        self.name = f":{int(number)}"
        self.env = dict(os.environ, DISPLAY=self.name)
        self.openbox = subprocess.Popen(
            ["openbox", "--sm-disable"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "openbox.log", "wb"),  # noqa: SIM115
        )
        self._wait_for_window_manager()

    def _wait_for_window_manager(self, timeout: float = 20.0) -> None:
        """openbox sets _NET_SUPPORTING_WM_CHECK on the root window once it manages."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            done = subprocess.run(
                ["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"],
                env=self.env,
                capture_output=True,
                text=True,
            )
            if "window id" in done.stdout:
                return
            if self.openbox.poll() is not None:
                raise RuntimeError("openbox exited: " + (self.workdir / "openbox.log").read_text())
            time.sleep(0.1)
        raise RuntimeError("openbox did not take the display within 20 s")

    def stop(self) -> None:
        for process in (self.openbox, self.xvfb):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


class RunningApp:
    """One `editedid` process on `display`, in the home folder `home`."""

    def __init__(
        self,
        display: XDisplay,
        home: Path,
        files: list[Path],
        shots: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.display = display
        self.home = home
        self.shots = shots
        self.shot_count = 0
        self.state_file = home / "state.json"
        self.stderr_path = home / "editedid.stderr"
        env = dict(display.env)
        env.pop("QT_QPA_PLATFORM", None)  # CI sets offscreen for the in-process tests
        env.update(
            QT_QPA_PLATFORM="xcb",
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            XDG_CACHE_HOME=str(home / ".cache"),
            XDG_RUNTIME_DIR=str(home / "runtime"),
            EDITEDID_STATE_FILE=str(self.state_file),
            PYTHONFAULTHANDLER="1",
            HF_HUB_OFFLINE="1",
        )
        (home / "runtime").mkdir(mode=0o700, exist_ok=True)
        env.update(extra_env or {})
        self.env = env
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [str(editedid_command()), *map(str, files)],
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=open(self.stderr_path, "wb"),  # noqa: SIM115 - closed with the process
        )
        self._last_seq = -1
        self._last_change = time.monotonic()
        self.longest_silence = 0.0  # the longest the UI thread went unheard (after showing)
        self._window: str | None = None
        self.wait_for(lambda s: s["seq"] > 0, START_S, "the window shows")

    # -- state ---------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def state(self) -> dict[str, Any]:
        """A state written after this call: the process lives and its UI thread answers
        within RESPONSIVE_S (else a freeze, with the stacks)."""
        return self.wait_for(lambda s: True, RESPONSIVE_S, "the app answers", fresh=True)

    def wait_for(
        self,
        condition: Callable[[dict[str, Any]], Any],
        timeout: float,
        what: str,
        *,
        fresh: bool = False,
    ) -> dict[str, Any]:
        """Wait until condition(state) holds (on a state written after this call if
        `fresh`); fail at once on a crash, or on a freeze: the state file unchanged for
        FREEZE_S once the window is up."""
        end = time.monotonic() + timeout
        current = self._read()
        since = current["seq"] if (fresh and current is not None) else -1
        while True:
            if self.process.poll() is not None:
                raise self.failure(
                    f"crashed (exit code {self.process.returncode}) while waiting for: {what}"
                )
            state = self._read()
            now = time.monotonic()
            if state is not None and state["seq"] != self._last_seq:
                if self._last_seq > 0:
                    self.longest_silence = max(self.longest_silence, now - self._last_change)
                self._last_seq, self._last_change = state["seq"], now
            if state is not None and state["seq"] > since and condition(state):
                return state
            limit = FREEZE_S if self._last_seq > 0 else START_S
            if now - self._last_change > limit:
                raise self.failure(
                    f"froze: the UI thread has not answered for {now - self._last_change:.1f} s "
                    f"while waiting for: {what}",
                    frozen=True,
                )
            if now > end and fresh:  # a state() unanswered: the stacks say why
                raise self.failure(f"froze: no answer within {timeout:.0f} s", frozen=True)
            if now > end:
                raise self.failure(
                    f"timed out after {timeout:.0f} s waiting for: {what}\n"
                    f"last state: {json.dumps(state)[:3000]}"
                )
            time.sleep(0.05)

    # -- input ---------------------------------------------------------------------------
    def xdotool(self, *args: str) -> str:
        done = subprocess.run(
            ["xdotool", *args], env=self.display.env, capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            raise self.failure(f"xdotool {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def window_id(self) -> str:
        if self._window is None:
            ids = self.xdotool(
                "search", "--sync", "--onlyvisible", "--pid", str(self.pid), "--name", "EditedID"
            )
            self._window = ids.split()[0]
        return self._window

    def window_name(self) -> str:
        """The title the X server holds for the main window (`xdotool getwindowname`)."""
        return self.xdotool("getwindowname", self.window_id())

    def focus(self) -> None:
        self.xdotool("windowactivate", "--sync", self.window_id())

    def key(self, *keys: str) -> None:
        self.xdotool("key", "--clearmodifiers", *keys)

    def type_text(self, text: str) -> None:
        self.xdotool("type", "--delay", "20", text)

    def move(self, x: float, y: float) -> None:
        self.xdotool("mousemove", "--sync", str(int(x)), str(int(y)))

    def click(
        self, x: float, y: float, button: int = 1, repeat: int = 1, *, sync: bool = True
    ) -> None:
        """Click at (x, y); with `sync`, return once the UI thread has taken the events
        (the state's `inputs` count: a press and a release per click, one event per wheel
        notch), so the positions read next are the ones after the click or the scroll.
        `sync=False` for a click that may end the process."""
        before = self.state()["inputs"] if sync else 0
        self.move(x, y)
        self.xdotool("click", "--repeat", str(repeat), "--delay", "80", str(button))
        if sync:
            events = repeat if button in (4, 5) else 2 * repeat
            self.wait_for(
                lambda s: s["inputs"] >= before + events, 10, f"the app takes button {button}"
            )

    def wheel(self, x: float, y: float, notches: int) -> None:
        """Turn the wheel over (x, y): positive notches down (button 5), negative up (4)."""
        self.click(x, y, 5 if notches > 0 else 4, repeat=abs(notches))

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        self.move(*start)
        self.xdotool("mousedown", "1")
        for i in range(1, steps + 1):
            t = i / steps
            self.move(start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
        self.xdotool("mouseup", "1")

    # -- screen --------------------------------------------------------------------------
    def screenshot(self, name: str) -> np.ndarray:
        self.shot_count += 1
        path = self.shots / f"{self.shot_count:02d}-{name}.png"
        subprocess.run(
            ["import", "-display", self.display.name, "-window", "root", str(path)],
            check=True,
            timeout=60,
            capture_output=True,
        )
        self.last_shot = path
        return np.asarray(Image.open(path).convert("RGB"))

    # -- ending --------------------------------------------------------------------------
    def crash_reports(self) -> str:
        folder = self.home / ".local" / "share" / "EditedID" / "crash-reports"
        logs = sorted(folder.glob("*.log")) if folder.is_dir() else []
        return "\n".join(f"== {p.name} ==\n{p.read_text(errors='replace')}" for p in logs)

    def failure(self, message: str, *, frozen: bool = False) -> AppFailure:
        parts = [f"editedid (pid {self.pid}) {message}"]
        if frozen:
            parts.append(self.native_stacks())
        try:
            self.screenshot("failure")
            parts.append(f"screenshots: {self.shots} (last: {self.last_shot})")
        except Exception as exc:  # noqa: BLE001 - the display may be gone too
            parts.append(f"no screenshot ({exc}); earlier ones in {self.shots}")
        stderr = self.stderr_path.read_text(errors="replace")
        parts.append("stderr (end):\n" + stderr[-4000:])
        reports = self.crash_reports()
        if reports:
            parts.append("crash reports:\n" + reports[-6000:])
        return AppFailure("\n\n".join(parts))

    def native_stacks(self) -> str:
        tool = py_spy()
        if tool is None:
            return "(py-spy is not installed: no stacks of the frozen process)"
        done = subprocess.run(
            [tool, "dump", "--native", "--pid", str(self.pid)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return f"py-spy dump --native:\n{done.stdout[-12000:]}{done.stderr[-2000:]}"

    def quit_with_ctrl_q(self, timeout: float = 90.0) -> int:
        """Ctrl+Q; the exit code (the app waits up to 60 s for a running engine call)."""
        self.focus()
        self.key("ctrl+q")
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self.failure(
                f"did not exit within {timeout:.0f} s of Ctrl+Q", frozen=True
            ) from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


def changed_fraction(a: np.ndarray, b: np.ndarray, rect: list[int], threshold: int = 12) -> float:
    """Share of pixels in the screen rectangle [x, y, w, h] that differ by more than
    `threshold` (any channel) between two screenshots."""
    x, y, w, h = rect
    pa = a[y : y + h, x : x + w].astype(np.int16)
    pb = b[y : y + h, x : x + w].astype(np.int16)
    return float((np.abs(pa - pb).max(axis=2) > threshold).mean())

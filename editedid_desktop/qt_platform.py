"""Can Qt start its X11 platform (xcb) here, and if not, which system packages are missing.

Qt aborts the process when its xcb plugin cannot load ("Could not load the Qt platform
plugin "xcb" ... even though it was found"), without naming the library that is missing.
PySide6's wheels bring Qt but not the X11/EGL/font libraries the plugin links. So:
`xcb_problem()` (app.main, before QApplication) tries to load the plugin once; when that
fails, `missing_libraries()` asks ldd which libraries it could not find, and `report()`
says so with the exact apt and dnf commands. `python -m editedid_desktop.qt_platform`
prints the same check (packaging/install.sh runs it).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# soname -> (Debian/Ubuntu package, Fedora package). The list is the dependency closure of
# PySide6's libqxcb.so (`ldd` on it) outside glibc and the libraries PySide6 bundles.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libXau.so.6": ("libxau6", "libXau"),
    "libXdmcp.so.6": ("libxdmcp6", "libXdmcp"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libGLdispatch.so.0": ("libglvnd0", "libglvnd"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libpng16.so.16": ("libpng16-16", "libpng"),
    "libzstd.so.1": ("libzstd1", "libzstd"),
    "libz.so.1": ("zlib1g", "zlib"),
}


def xcb_plugin() -> Path | None:
    """PySide6's X11 platform plugin, or None where there is none (Windows, macOS)."""
    import PySide6

    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def will_use_xcb(environ: dict[str, str] | None = None) -> bool:
    """Whether Qt will try the xcb platform in this environment (Linux only)."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return False
    platform = env.get("QT_QPA_PLATFORM", "").strip().lower()
    if platform:
        return platform.split(";")[0].startswith("xcb")
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def parse_ldd(text: str) -> list[str]:
    """The sonames ldd printed as "not found", in its order, once each."""
    missing: list[str] = []
    for line in text.splitlines():
        name, _, where = line.strip().partition("=>")
        name = name.strip()
        if where.strip() == "not found" and name not in missing:
            missing.append(name)
    return missing


def missing_libraries(plugin: Path | None = None) -> list[str]:
    """Libraries the xcb plugin links that this system lacks ([] when none, or no ldd)."""
    plugin = plugin or xcb_plugin()
    ldd = shutil.which("ldd")
    if plugin is None or ldd is None:
        return []
    out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=60)
    return parse_ldd(out.stdout)


def install_commands(missing: Sequence[str]) -> list[str]:
    """The apt and dnf commands that install the packages holding `missing`."""
    known = [PACKAGES[name] for name in missing if name in PACKAGES]
    apt = sorted({debian for debian, _ in known})
    dnf = sorted({fedora for _, fedora in known})
    commands = []
    if apt:
        commands.append("sudo apt install " + " ".join(apt))
    if dnf:
        commands.append("sudo dnf install " + " ".join(dnf))
    unknown = [name for name in missing if name not in PACKAGES]
    for name in unknown:
        commands.append(f"apt-file search {name}   # or: dnf provides '*/{name}'")
    return commands


def report(missing: Sequence[str], error: str = "") -> str:
    """What the user reads when Qt cannot start its X11 platform."""
    lines = ["EditedID Desktop cannot open its window: Qt's X11 platform (xcb) does not load."]
    if missing:
        lines.append("These system libraries are missing: " + ", ".join(missing) + ".")
        lines.append("Install them with (Debian/Ubuntu, then Fedora):")
        lines.extend("    " + command for command in install_commands(missing))
    elif error:
        lines.append(f"Loading it failed with: {error}")
    lines.append(
        "Then start EditedID again. (On Wayland, QT_QPA_PLATFORM=wayland uses Wayland "
        "instead; QT_QPA_PLATFORM=offscreen runs without a screen.)"
    )
    return "\n".join(lines)


def xcb_problem() -> str:
    """ "" when Qt can load its xcb plugin here (or will not use it), else report()."""
    plugin = xcb_plugin()
    if plugin is None or not will_use_xcb():
        return ""
    try:
        ctypes.CDLL(str(plugin))  # what Qt does next; its error names one library only
    except OSError as exc:
        return report(missing_libraries(plugin), str(exc))
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Print which libraries Qt's xcb plugin lacks and how to install them; 1 if any."""
    del argv
    plugin = xcb_plugin()
    if plugin is None:
        print("No X11 platform plugin in this PySide6 (not Linux): nothing to check.")
        return 0
    missing = missing_libraries(plugin)
    if not missing:
        print("Qt's X11 platform libraries are all installed.")
        return 0
    print(report(missing))
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv))

"""What the frozen bundle must carry besides the modules PyInstaller's analysis finds.

Libraries load things at run time that no import statement names: data files next to
their modules (kernels' `_internals/python_depends.json`, read by transformers 5.x at
import), their own distribution metadata (`importlib.metadata.version(...)` checks in
diffusers, transformers, huggingface_hub), and modules imported by name. The spec does not
list them by hand: it walks the run-time dependency closure of the installed
`editedid-desktop` distribution (its `Requires-Dist` without extras, markers evaluated for
this interpreter, recursively) and, for every distribution in it,

- copies its metadata (`copy_metadata`),
- collects the data files inside its import packages (`collect_data_files`; tests, C/C++
  sources and headers, build files and caches left out),
- collects all its modules when it is small (`SMALL_PACKAGE_BYTES` of Python source at
  most: kernels, huggingface_hub, tokenizers, ...) and wraps no Qt binding (qtpy and
  superqt would pull in every Qt module), so a module imported by name at run time is
  there. The large ones (torch, transformers, diffusers, scipy, PySide6, ...) are
  collected by their PyInstaller hooks and the spec's targeted lists instead (all of
  transformers' 400 model families would add minutes to the build and hundreds of MB).

So whatever versions a resolve picks (a new transformers that needs a new package and its
data file), the bundle follows the installed distributions.

    python packaging/bundle_contents.py            # prints the closure and what it adds
"""

from __future__ import annotations

import os
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

APP_DISTRIBUTION = "editedid-desktop"

# Data files that nothing loads at run time: tests, sources, headers, build files.
DATA_EXCLUDES = [
    "**/tests/**",
    "**/test/**",
    "**/testing/**",
    "**/__pycache__/**",
    "**/*.pyc",
    "**/*.h",
    "**/*.hpp",
    "**/*.cuh",
    "**/*.c",
    "**/*.cc",
    "**/*.cpp",
    "**/*.pyx",
    "**/*.pxd",
    "**/*.lib",
    "**/*.cmake",
    "**/CMakeLists.txt",
    # shared libraries are binaries: the analysis and the hooks collect them (with their
    # own dependencies), never as data
    "**/*.so",
    "**/*.so.*",
    "**/*.pyd",
    "**/*.dll",
    "**/*.dylib",
]

# Python source size up to which all of a distribution's modules are collected.
SMALL_PACKAGE_BYTES = 2_000_000

# Distributions whose modules are collected by their own hooks or the spec's targeted
# lists, whatever their size (see the spec).
HOOKED_MODULES = {"torch", "transformers", "diffusers", "opencv-python"}
# Distributions whose data files their hooks collect and trim (PySide6's hooks take the
# Qt plugins and resources the app uses; a blanket collection would add Qt WebEngine's
# resources, QML and translations; torch's hook takes its data without headers).
HOOKED_DATA = {"torch"}
HOOKED_PREFIXES = ("pyside6", "shiboken6")


def _name(dist: metadata.Distribution) -> str:
    return canonicalize_name(dist.metadata["Name"])


def runtime_closure(root: str = APP_DISTRIBUTION) -> dict[str, metadata.Distribution]:
    """Installed distributions `root` needs at run time: name -> distribution.

    Requirements behind an extra (`; extra == "dev"`) are left out, markers are evaluated
    for this interpreter, and a requirement that is not installed is skipped (an optional
    platform dependency such as hf-xet off x86_64)."""
    env = default_environment()
    env["extra"] = ""
    seen: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name == canonicalize_name(root):
                raise
            continue
        seen[name] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return seen


METADATA_DIRS = (".dist-info", ".data", ".egg-info")
EXTENSION = re.compile(r"^[A-Za-z_]\w*\.(cpython|abi3)[^/]*\.(so|pyd)$")


def import_names(dist: metadata.Distribution) -> list[str]:
    """Top-level importable packages and modules a distribution installs."""
    text = dist.read_text("top_level.txt")
    names = set(text.split()) if text else set()
    for path in dist.files or []:
        parts = path.parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(METADATA_DIRS):
            continue
        if len(parts) > 1 and parts[1] == "__init__.py":
            names.add(parts[0])
        elif len(parts) == 1 and parts[0].endswith(".py"):
            names.add(parts[0][:-3])
        elif len(parts) == 1 and EXTENSION.match(parts[0]):
            names.add(parts[0].split(".")[0])
    return sorted(n for n in names if n.isidentifier() and not n.startswith("_distutils"))


def python_source_bytes(dist: metadata.Distribution) -> int:
    return sum((f.size or 0) for f in dist.files or [] if f.suffix == ".py")


def is_package(dist: metadata.Distribution, name: str) -> bool:
    return any(f.parts[:2] == (name, "__init__.py") for f in dist.files or [] if len(f.parts) >= 2)


QT_BINDINGS = re.compile(rb"\b(PySide[26]|PyQt[56]|qtpy)\b")


def imports_qt(dist: metadata.Distribution) -> bool:
    """Its modules import a Qt binding (qtpy, superqt): collecting all of them would pull
    in every Qt module they wrap (SQL drivers, QML, multimedia); the analysis follows the
    ones the app imports."""
    for f in dist.files or []:
        if f.suffix == ".py" and QT_BINDINGS.search(Path(dist.locate_file(f)).read_bytes()):
            return True
    return False


def plan(root: str = APP_DISTRIBUTION) -> dict[str, list[str]]:
    """What the spec collects beyond the analysis, by distribution (no PyInstaller import):
    {"metadata": [dist names], "data": [packages], "submodules": [packages]}."""
    closure = runtime_closure(root)
    out: dict[str, list[str]] = {"metadata": [], "data": [], "submodules": []}
    for name, dist in sorted(closure.items()):
        out["metadata"].append(dist.metadata["Name"])
        if name == canonicalize_name(root) or name.startswith(HOOKED_PREFIXES):
            continue  # our own packages: the spec collects engine/ and editedid_desktop/
        small = python_source_bytes(dist) <= SMALL_PACKAGE_BYTES and not imports_qt(dist)
        for pkg in import_names(dist):
            if not is_package(dist, pkg):
                continue
            if name not in HOOKED_DATA and pkg not in out["data"]:
                out["data"].append(pkg)
            if name not in HOOKED_MODULES and small and pkg not in out["submodules"]:
                out["submodules"].append(pkg)
    return out


def main() -> int:
    result = plan()
    for key, names in result.items():
        print(f"{key} ({len(names)}): {' '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --- the build machine's own libraries --------------------------------------------------
# PyInstaller copies every shared library a bundled binary needs and finds on the build
# machine, unless its exclude list names it (glibc, OpenGL, libxcb, Wayland). So the
# bundle, and the .deb's Depends read from it, followed the machine: with GTK installed
# the GTK platform theme brought libgtk-3/libgdk-3 (which need Wayland), with
# libxcb-icccm4 installed Qt's xcb plugin brought it, without them the same names became
# dependencies. The spec drops every such library: the bundle holds what the wheels and
# the Python runtime ship, nothing of the build machine's system, and each system library
# is a Debian dependency (packaging/deb_depends.py's reviewed table).
SYSTEM_LIBRARY_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/local/lib/")
PYTHON_DIRS = ("/site-packages/", "/dist-packages/", "/lib-dynload/")


def is_host_library(source: str, typecode: str) -> bool:
    """A shared library of the build machine's system (not an extension module, not a
    wheel's or Python's own library)."""
    if typecode != "BINARY":
        return False
    real = os.path.realpath(source)
    name = os.path.basename(real)
    return (
        real.startswith(SYSTEM_LIBRARY_DIRS)
        and not any(d in real for d in PYTHON_DIRS)
        and not name.startswith("libpython")
    )


def without_host_libraries(binaries: list[tuple[str, str, str]]) -> tuple[list, list[str]]:
    """(the TOC without the build machine's system libraries, their destination names)."""
    kept, dropped = [], []
    for entry in binaries:
        (dropped if is_host_library(entry[1], entry[2]) else kept).append(entry)
    return kept, sorted(entry[0] for entry in dropped)

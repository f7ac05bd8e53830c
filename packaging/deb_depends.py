"""Debian `Depends`/`Recommends` of the PyInstaller bundle, read from its binaries.

    python packaging/deb_depends.py dist/EditedID            # prints the two fields
    python packaging/deb_depends.py dist/EditedID --explain  # which file needs which library

Every ELF file of the bundle is read with `objdump -p` (its NEEDED sonames and the
GLIBC_x.y versions it references). A soname that the bundle ships itself is done; every
other one must come from the system: it is looked up with `ldconfig -p`, the package
owning it with `dpkg -S`, and the version floor from that package's `shlibs` file (what
dpkg-shlibdeps uses when a library has no symbols file). glibc's floor is the highest
GLIBC_ version the binaries reference. A soname this machine does not have is mapped by
REVIEWED (below) and reported as such; an unknown one is an error, never a guess.

Libraries needed only by optional Qt plugins (Wayland, GTK theme, input methods, TLS,
network status) go to Recommends: the app starts without them (Qt skips the plugin).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict
from fnmatch import fnmatch
from pathlib import Path

# Plugins Qt loads only when the desktop asks for them; the xcb platform (X11 and
# XWayland), image formats and the offscreen platform stay hard dependencies.
OPTIONAL = [
    "*/Qt/plugins/platforms/libqwayland*",
    "*/Qt/plugins/wayland-*/*",
    "*/Qt/lib/libQt6WaylandClient*",
    "*/Qt/lib/libQt6WlShellIntegration*",
    "*/Qt/plugins/platformthemes/*",
    "*/Qt/plugins/platforminputcontexts/*",
    "*/Qt/plugins/tls/*",
    "*/Qt/plugins/networkinformation/*",
    "*/Qt/plugins/xcbglintegrations/*",
    "*/Qt/plugins/egldeviceintegrations/*",
]

# Sonames whose packages are not installed on the build machine used so far (Debian 12),
# so `dpkg -S` cannot name them there. Reviewed against packages.debian.org (bookworm)
# and packages.ubuntu.com (jammy/noble: the t64 renames of noble provide these names).
REVIEWED = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
    "libgtk-3.so.0": "libgtk-3-0",
    "libgdk-3.so.0": "libgtk-3-0",
    "libatk-1.0.so.0": "libatk1.0-0",
    "libpango-1.0.so.0": "libpango-1.0-0",
    "libcairo-gobject.so.2": "libcairo-gobject2",
    "libgdk_pixbuf-2.0.so.0": "libgdk-pixbuf-2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libXext.so.6": "libxext6",
    "libXrender.so.1": "libxrender1",
    "libgthread-2.0.so.0": "libglib2.0-0",
}

# The GNU C library: one package, its floor from GLIBC_ symbol versions.
GLIBC_SONAMES = {
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libutil.so.1",
    "ld-linux-x86-64.so.2",
    "libresolv.so.2",
    "libanl.so.1",
}


def elf_files(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(path)
    return out


def read_elf(path: Path) -> tuple[list[str], set[str]]:
    """NEEDED sonames and GLIBC_ versions referenced by one ELF file."""
    text = subprocess.run(
        ["objdump", "-p", str(path)], capture_output=True, text=True, check=True
    ).stdout
    needed = re.findall(r"^\s+NEEDED\s+(\S+)", text, flags=re.M)
    glibc = set(re.findall(r"\bGLIBC_(\d+\.\d+(?:\.\d+)?)\b", text))
    return needed, glibc


def _ldconfig() -> dict[str, str]:
    text = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    found: dict[str, str] = {}
    for m in re.finditer(r"^\s+(\S+) \(([^)]*)\) => (\S+)$", text, flags=re.M):
        if "x86-64" in m.group(2) or "64bit" in m.group(2):
            found.setdefault(m.group(1), m.group(3))
    return found


def owner(path: str) -> str | None:
    """Debian package owning `path` (tries the /usr-merged twin too)."""
    real = str(Path(path).resolve())
    for candidate in dict.fromkeys([path, real, "/usr" + real, real.removeprefix("/usr")]):
        out = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def shlibs_floor(package: str, soname: str) -> str:
    """`pkg (>= v)` from the package's shlibs file, or the bare package name."""
    m = re.match(r"(.+)\.so\.(.+)$", soname)
    files = list(Path("/var/lib/dpkg/info").glob(f"{package}.shlibs")) + list(
        Path("/var/lib/dpkg/info").glob(f"{package}:*.shlibs")
    )
    if m:
        for f in files:
            for line in f.read_text().splitlines():
                parts = line.split(None, 2)
                if len(parts) == 3 and parts[0] == m.group(1) and parts[1] == m.group(2):
                    return parts[2].split(",")[0].strip()
    return package


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def analyse(bundle: Path) -> dict:
    files = elf_files(bundle)
    shipped = {p.name for p in bundle.rglob("*")}
    needs: dict[str, list[str]] = defaultdict(list)  # soname -> bundle files needing it
    optional_only: dict[str, bool] = {}
    glibc: set[str] = set()
    for path in files:
        rel = path.relative_to(bundle).as_posix()
        needed, versions = read_elf(path)
        glibc |= versions
        is_optional = any(fnmatch("/" + rel, p) for p in OPTIONAL)
        for soname in needed:
            if soname in shipped:
                continue
            needs[soname].append(rel)
            optional_only[soname] = optional_only.get(soname, True) and is_optional
    system = _ldconfig()
    depends: dict[str, str] = {}
    recommends: dict[str, str] = {}
    how: dict[str, str] = {}
    unknown = []
    for soname in sorted(needs):
        if soname in GLIBC_SONAMES:
            continue
        path = system.get(soname)
        package = owner(path) if path else None
        if package:
            field = shlibs_floor(package, soname)
            how[soname] = f"{package} (dpkg -S {path})"
        elif soname in REVIEWED:
            field = REVIEWED[soname]
            how[soname] = f"{field} (REVIEWED table: not installed on this machine)"
        else:
            unknown.append(soname)
            continue
        name = field.split()[0]
        target = recommends if optional_only[soname] else depends
        # keep the strictest floor seen for a package
        if name not in target or len(field) > len(target[name]):
            target[name] = field
    floor = max(glibc, key=version_key) if glibc else None
    depends["libc6"] = f"libc6 (>= {floor})" if floor else "libc6"
    for name in list(recommends):
        if name in depends:
            del recommends[name]
    return {
        "depends": [depends[k] for k in sorted(depends)],
        "recommends": [recommends[k] for k in sorted(recommends)],
        "needs": dict(needs),
        "how": how,
        "unknown": unknown,
        "elf_files": len(files),
        "glibc": floor,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args(argv)
    result = analyse(args.bundle)
    if args.explain:
        print(f"# {result['elf_files']} ELF files, highest GLIBC_ version {result['glibc']}")
        for soname, users in sorted(result["needs"].items()):
            how = result["how"].get(soname, "glibc" if soname in GLIBC_SONAMES else "UNKNOWN")
            print(
                f"# {soname}: {how}; needed by {users[0]}"
                + (f" and {len(users) - 1} more" if len(users) > 1 else "")
            )
    if result["unknown"]:
        print(
            "deb_depends: no package known for "
            + ", ".join(result["unknown"])
            + " (install it here so dpkg -S names it, or review it into REVIEWED)",
            file=sys.stderr,
        )
        return 1
    print("Depends: " + ", ".join(result["depends"]))
    if result["recommends"]:
        print("Recommends: " + ", ".join(result["recommends"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

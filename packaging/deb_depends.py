"""Debian `Depends`/`Recommends` of the PyInstaller bundle, from its binaries alone.

    python packaging/deb_depends.py dist/EditedID            # prints the two fields
    python packaging/deb_depends.py dist/EditedID --explain  # which file needs which library

The fields are a function of the bundle and of this file, never of the build machine:
no `ldconfig`, `dpkg -S` or shlibs file of the host is read (a host with GTK or Wayland
libraries installed used to give other fields than one without).

1. Every ELF file of the bundle is read with `objdump -p`: its NEEDED sonames and the
   GLIBC_x.y symbol versions it references.
2. The bundle's own dependency graph: a NEEDED soname that the bundle ships is an edge to
   that file. The files Qt loads only when the desktop asks for them (`OPTIONAL`:
   Wayland, the GTK theme, input methods, TLS, network status, GLX/EGL integration) are
   optional; every other file nothing in the bundle needs (executables, Python
   extensions, mandatory Qt plugins, libraries loaded with dlopen) is a root. Files
   reachable from a root are mandatory; the rest (optional plugins and the libraries
   only they need) are optional.
3. A soname the bundle does not ship comes from the system: `SYSTEM` maps it to its
   Debian package (reviewed against packages.debian.org for bookworm and
   packages.ubuntu.com for jammy/noble, whose t64 renames provide the same names on
   amd64). Needed by a mandatory file: Depends; only by optional ones: Recommends (Qt
   skips a plugin whose libraries are missing). A soname missing from the table stops the
   build (`dpkg -S` of this machine is shown as a hint, never used).
4. Packages no NEEDED entry names but a library loads at run time (`RUNTIME_DATA`):
   fontconfig reads /etc/fonts/fonts.conf and needs at least one font, or every glyph is
   an empty box, and a system font cache, or it writes one into the user's home.

No version floors but glibc's (the highest GLIBC_ symbol version referenced): the
sonames are the ABI, and the floors of the host's shlibs files follow its package
versions (this host's libssl3 says `>= 3.0.19`, which Ubuntu 22.04's 3.0.2 would fail).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
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
    "*/Qt/plugins/printsupport/*",
]

# soname -> Debian package. Reviewed against packages.debian.org (bookworm) and
# packages.ubuntu.com (jammy, noble).
SYSTEM = {
    # OpenGL / EGL through libglvnd (PyInstaller never bundles them: they belong to the
    # graphics driver)
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
    "libGLESv2.so.2": "libgles2",
    "libdrm.so.2": "libdrm2",
    # X11 / xcb (Qt's xcb platform plugin)
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb-dri2.so.0": "libxcb-dri2-0",
    "libxcb-dri3.so.0": "libxcb-dri3-0",
    "libxcb-present.so.0": "libxcb-present0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libXext.so.6": "libxext6",
    "libXrender.so.1": "libxrender1",
    "libXi.so.6": "libxi6",
    "libXfixes.so.3": "libxfixes3",
    "libXrandr.so.2": "libxrandr2",
    "libXcursor.so.1": "libxcursor1",
    "libXinerama.so.1": "libxinerama1",
    "libXcomposite.so.1": "libxcomposite1",
    "libXdamage.so.1": "libxdamage1",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    # Wayland (PyInstaller never bundles these either)
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
    "libwayland-server.so.0": "libwayland-server0",
    # GTK 3 and what it links (the GTK platform theme)
    "libgtk-3.so.0": "libgtk-3-0",
    "libgdk-3.so.0": "libgtk-3-0",
    "libatk-1.0.so.0": "libatk1.0-0",
    "libatk-bridge-2.0.so.0": "libatk-bridge2.0-0",
    "libpango-1.0.so.0": "libpango-1.0-0",
    "libpangocairo-1.0.so.0": "libpangocairo-1.0-0",
    "libpangoft2-1.0.so.0": "libpangoft2-1.0-0",
    "libcairo.so.2": "libcairo2",
    "libcairo-gobject.so.2": "libcairo-gobject2",
    "libgdk_pixbuf-2.0.so.0": "libgdk-pixbuf-2.0-0",
    "libharfbuzz.so.0": "libharfbuzz0b",
    "libepoxy.so.0": "libepoxy0",
    # GLib, D-Bus, fonts, images, compression
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libgio-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgmodule-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libpng16.so.16": "libpng16-16",
    "libexpat.so.1": "libexpat1",
    "libz.so.1": "zlib1g",
    "libbz2.so.1.0": "libbz2-1.0",
    "liblzma.so.5": "liblzma5",
    "libzstd.so.1": "libzstd1",
    "libbrotlidec.so.1": "libbrotli1",
    "libbrotlicommon.so.1": "libbrotli1",
    "libffi.so.8": "libffi8",
    "libuuid.so.1": "libuuid1",
    "libssl.so.3": "libssl3",
    "libcrypto.so.3": "libssl3",
    "libmd.so.0": "libmd0",
    "libbsd.so.0": "libbsd0",
    "libselinux.so.1": "libselinux1",
    "libpcre2-8.so.0": "libpcre2-8-0",
    "libmount.so.1": "libmount1",
    "libblkid.so.1": "libblkid1",
    "libsystemd.so.0": "libsystemd0",
    "libudev.so.1": "libudev1",
    "libreadline.so.8": "libreadline8",
    "libsqlite3.so.0": "libsqlite3-0",
    "libgssapi_krb5.so.2": "libgssapi-krb5-2",
    "libxkbfile.so.1": "libxkbfile1",
    "libcups.so.2": "libcups2",
    "libgcc_s.so.1": "libgcc-s1",
    "libstdc++.so.6": "libstdc++6",
    "libgomp.so.1": "libgomp1",
}

# Run-time data that no NEEDED entry names: the library soname that loads it -> packages.
# fontconfig reads /etc/fonts/fonts.conf, which fontconfig-config ships (with the conf.d
# rules the desktop's own fonts use), and needs at least one font: fonts-dejavu-core,
# what fontconfig-config itself pulls first. `fontconfig` (which depends on
# fontconfig-config) adds fc-cache, whose trigger keeps the system's font cache in
# /var/cache/fontconfig: without it libfontconfig writes a cache into every user's
# ~/.cache/fontconfig on the first start (seen on a fresh Debian 12).
RUNTIME_DATA = {"libfontconfig.so.1": ["fontconfig", "fontconfig-config", "fonts-dejavu-core"]}

# The GNU C library: one package, its floor from GLIBC_ symbol versions.
GLIBC_SONAMES = {
    "libc.so.6",
    "libm.so.6",
    "libmvec.so.1",  # glibc's vector maths (libc6): pillow-heif's libx265 links it
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libutil.so.1",
    "ld-linux-x86-64.so.2",
    "libresolv.so.2",
    "libanl.so.1",
}

Reader = Callable[[Path], tuple[list[str], set[str]]]


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


def is_optional(rel: str) -> bool:
    return any(fnmatch("/" + rel, p) for p in OPTIONAL)


def mandatory_files(needed: dict[str, list[str]], names: dict[str, list[str]]) -> set[str]:
    """Files reachable from the roots of the bundle's own dependency graph.

    needed: file -> NEEDED sonames; names: soname (file name) -> files shipped under it.
    Roots: files that are not optional and that no file of the bundle needs."""
    edges = {f: [t for s in sonames for t in names.get(s, ())] for f, sonames in needed.items()}
    needed_by_some = {t for targets in edges.values() for t in targets}
    todo = [f for f in needed if f not in needed_by_some and not is_optional(f)]
    seen = set(todo)
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def _dpkg_hint(soname: str) -> str:
    """What this machine says about an unreviewed soname (a hint for the reviewer)."""
    out = subprocess.run(["dpkg", "-S", f"*/{soname}"], capture_output=True, text=True)
    return out.stdout.split(":", 1)[0] if out.returncode == 0 else "not installed here"


def analyse(bundle: Path, read: Reader = read_elf) -> dict:
    files = elf_files(bundle)
    names: dict[str, list[str]] = defaultdict(list)  # file name -> bundle files
    top = bundle.resolve()
    for path in bundle.rglob("*"):
        if path.is_file():  # a link counts under its own name, as its target's file
            target = path.resolve()
            if target.is_relative_to(top):
                names[path.name].append(target.relative_to(top).as_posix())
    needed: dict[str, list[str]] = {}
    glibc: set[str] = set()
    for path in files:
        sonames, versions = read(path)
        needed[path.relative_to(bundle).as_posix()] = sonames
        glibc |= versions
    mandatory = mandatory_files(needed, names)
    needs: dict[str, list[str]] = defaultdict(list)  # system soname -> bundle files
    for rel, sonames in needed.items():
        for soname in sonames:
            if soname not in names:
                needs[soname].append(rel)
    depends: set[str] = set()
    recommends: set[str] = set()
    unknown = []
    for soname, users in sorted(needs.items()):
        if soname in GLIBC_SONAMES:
            continue
        if soname not in SYSTEM:
            unknown.append(soname)
            continue
        (depends if any(u in mandatory for u in users) else recommends).add(SYSTEM[soname])
    for soname, packages in RUNTIME_DATA.items():
        loaded = [f for f in names.get(soname, ()) if f in mandatory]
        if loaded or any(u in mandatory for u in needs.get(soname, ())):
            depends.update(packages)
    floor = max(glibc, key=version_key) if glibc else None
    depends.add(f"libc6 (>= {floor})" if floor else "libc6")
    recommends -= depends
    return {
        "depends": sorted(depends),
        "recommends": sorted(recommends),
        "needs": dict(needs),
        "mandatory": mandatory,
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
        print(f"# {len(result['mandatory'])} of them mandatory (reachable from a root)")
        for soname, users in sorted(result["needs"].items()):
            how = SYSTEM.get(soname, "glibc" if soname in GLIBC_SONAMES else "UNKNOWN")
            kind = "Depends" if any(u in result["mandatory"] for u in users) else "Recommends"
            print(
                f"# {soname}: {how} ({kind}); needed by {users[0]}"
                + (f" and {len(users) - 1} more" if len(users) > 1 else "")
            )
    if result["unknown"]:
        hints = ", ".join(f"{s} ({_dpkg_hint(s)})" for s in result["unknown"])
        print(
            f"deb_depends: no reviewed package for {hints}: add it to SYSTEM in "
            "packaging/deb_depends.py after checking packages.debian.org/packages.ubuntu.com",
            file=sys.stderr,
        )
        return 1
    print("Depends: " + ", ".join(result["depends"]))
    if result["recommends"]:
        print("Recommends: " + ", ".join(result["recommends"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

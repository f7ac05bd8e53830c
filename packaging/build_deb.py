"""Build the Debian package of EditedID Desktop from the PyInstaller one-folder bundle.

    .venv/bin/python packaging/build_deb.py dist/EditedID --variant cpu --out dist
    -> dist/EditedID-<version>-linux-amd64-<variant>.deb  (package editedid <version>-1+<variant>)

Called by packaging/build_linux.sh after the bundle is built (no tool is fetched: only
dpkg-deb, objdump, ldconfig and dpkg -S of the build machine, and Pillow for the icons).
The package installs

    /opt/editedid/                       the bundle (EditedID and _internal/)
    /usr/bin/editedid, editedid-cli      start the app / its command line (--cli)
    /usr/share/applications/<APP_ID>.desktop   menu entry, "Open with" for photos and projects
    /usr/share/icons/hicolor/*/apps/editedid.png|svg
    /usr/share/mime/packages/editedid.xml      the .editedid project file type
    /usr/share/metainfo/<APP_ID>.metainfo.xml  software centres (AppStream)
    /usr/share/man/man1/editedid.1.gz, editedid-cli.1.gz
    /usr/share/doc/editedid/copyright, changelog.Debian.gz

The user's models and settings live in their home (~/.local/share/EditedID,
~/.config/EditedID) and are never touched by installing or removing the package.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from email.parser import Parser
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deb_depends import analyse  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "editedid"
# AppStream component id (reverse-DNS, as the AppStream spec asks). Chosen here: the
# project has no domain or public repository yet; change it together with the file
# names once it has one (software centres key reviews and updates on it).
APP_ID = "io.github.editedid.EditedID"
MAINTAINER = "EditedID Desktop maintainers <editedid@users.noreply.github.com>"
ICON_SIZES = [16, 22, 24, 32, 48, 64, 128, 256]
# What the app opens (editedid_desktop/canvas/view.py IMAGE_SUFFIXES) as MIME types,
# plus the project files (*.editedid) declared in mime/packages/editedid.xml.
IMAGE_MIME = [
    "image/jpeg",
    "image/png",
    "image/tiff",
    "image/webp",
    "image/bmp",
    "image/heif",
    "image/heic",
    "image/avif",
    # camera RAW originals, by shared-mime-info's names (engine.io.camera.RAW_EXTENSIONS)
    "image/x-adobe-dng",
    "image/x-canon-cr2",
    "image/x-canon-cr3",
    "image/x-canon-crw",
    "image/x-nikon-nef",
    "image/x-nikon-nrw",
    "image/x-sony-arw",
    "image/x-sony-sr2",
    "image/x-sony-srf",
    "image/x-fuji-raf",
    "image/x-olympus-orf",
    "image/x-panasonic-rw2",
    "image/x-pentax-pef",
    "image/x-samsung-srw",
    "image/x-minolta-mrw",
    "image/x-kodak-dcr",
    "image/x-kodak-kdc",
]
PROJECT_MIME = "application/x-editedid-project"
# Bundle files the package replaces with system-wide ones.
PER_USER_EXTRAS = ("install-desktop-entry.sh", "editedid.desktop", "editedid.png")

SUMMARY = "restore faces changed by AI image editors"
DESCRIPTION = """\
EditedID Desktop brings back the identity of faces that an AI image editor
changed: give it the original photo and the edited one, and it restores the
faces of the edit to look like the people in the original while keeping the
edit's style. It runs on the local machine (NVIDIA GPU or CPU); photos never
leave the computer.
.
Restoration uses Stable Diffusion 1.x models, which the app downloads with
its Model Manager on first use (or takes from a folder on offline machines).
The package also installs editedid-cli for batch work from a terminal."""


def debian_version(version: str) -> str:
    """PEP 440 pre-releases sort before the release in dpkg with '~' (1.0rc1 -> 1.0~rc1)."""
    return re.sub(r"(\d)(a|b|rc|\.dev)(\d*)$", r"\1~\2\3", version)


def build_name(variant: str) -> str:
    """cpu -> CPU, cu128 -> CUDA 12.8."""
    return "CPU" if variant == "cpu" else f"CUDA {variant[2:4]}.{variant[4:]}"


def copy_bundle(bundle: Path, dest: Path) -> None:
    """Hard-link the bundle into the package tree (a copy where links cannot be made)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(
        bundle,
        dest,
        symlinks=True,
        copy_function=link,
        ignore=lambda d, names: [n for n in names if Path(d) == bundle and n in PER_USER_EXTRAS],
    )


def is_shared_library(path: Path) -> bool:
    """libfoo.so, libfoo.so.6, libcrypto-5409cd36.so.1.1.1k, x.cpython-311-x86_64-linux-gnu.so"""
    return re.search(r"\.so(\.[0-9A-Za-z]+)*$", path.name) is not None


def _head(path: Path, size: int) -> bytes:
    with path.open("rb") as f:
        return f.read(size)


def normalise_modes(tree: Path) -> None:
    """0755 for folders, programs and scripts that have an execute bit; 0644 for the rest,
    shared libraries and data files with a stray execute bit included (wheels ship some:
    lintian's shared-library-is-executable, executable-not-elf-or-script). Files linked to
    the bundle are copied before, so dist/EditedID keeps its modes."""
    for path in [tree, *tree.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        if path.is_dir():
            want = 0o755
        elif mode & 0o111 and not is_shared_library(path):
            want = 0o755 if _head(path, 4) in (b"\x7fELF",) or _head(path, 2) == b"#!" else 0o644
        else:
            want = 0o644
        if mode & 0o7777 != want:
            if path.is_file() and path.stat().st_nlink > 1:  # linked to the bundle: a copy
                tmp = path.with_name(path.name + ".copy")
                shutil.copyfile(path, tmp)
                os.replace(tmp, path)
            path.chmod(want)


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def write_gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(text.encode("utf-8"))
    path.chmod(0o644)


def launchers(usr: Path) -> None:
    # Scripts, not symlinks: editedid-cli adds --cli. They find the bundle relative to
    # themselves, so an install under another root (dpkg --root, the install test) works.
    body = (
        "#!/bin/sh\n"
        "# {what} (the EditedID Desktop bundle lives in /opt/editedid).\n"
        'here=$(dirname "$(readlink -f "$0")")\n'
        'exec "$here/../../opt/editedid/EditedID"{args} "$@"\n'
    )
    write(usr / "bin/editedid", body.format(what="The desktop app", args=""), 0o755)
    write(usr / "bin/editedid-cli", body.format(what="The command line", args=" --cli"), 0o755)


def desktop_entry(version: str, command: str = "editedid") -> str:
    """The menu entry; build_linux.sh writes it into the .tar.gz's folder too."""
    mime = ";".join(IMAGE_MIME + [PROJECT_MIME]) + ";"
    return f"""[Desktop Entry]
Type=Application
Name=EditedID
GenericName=Face Identity Restoration
Comment=Restore the original identity of faces changed by AI image editors
Exec={command} %F
TryExec={command}
Icon=editedid
Terminal=false
Categories=Graphics;2DGraphics;RasterGraphics;Photography;
Keywords=face;identity;restore;photo;AI;edit;stable diffusion;
MimeType={mime}
StartupNotify=true
StartupWMClass=EditedID
X-AppVersion={version}
"""


def mime_package() -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="{PROJECT_MIME}">
    <comment>EditedID project</comment>
    <sub-class-of type="application/json"/>
    <generic-icon name="editedid"/>
    <glob pattern="*.editedid"/>
  </mime-type>
</mime-info>
"""


def metainfo(version: str, date: str, license_: str) -> str:
    mimes = "\n".join(f"    <mediatype>{m}</mediatype>" for m in IMAGE_MIME + [PROJECT_MIME])
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<component type="desktop-application">
  <id>{APP_ID}</id>
  <metadata_license>CC0-1.0</metadata_license>
  <project_license>{license_}</project_license>
  <name>EditedID</name>
  <summary>Restore faces changed by AI image editors</summary>
  <developer id="{APP_ID.rsplit(".", 1)[0]}">
    <name>EditedID Desktop authors</name>
  </developer>
  <description>
    <p>
      EditedID brings back the identity of faces that an AI image editor changed. Give it
      the original photo and the edited one: it restores the faces of the edit to look like
      the people in the original while keeping the edit's style, lighting and background.
    </p>
    <ul>
      <li>Runs on your computer (NVIDIA GPU or CPU): photos never leave it</li>
      <li>Paint masks to choose what is restored, compare before and after</li>
      <li>Batch restore folders from the command line with editedid-cli</li>
      <li>Downloads its Stable Diffusion 1.x model on first use, or works offline from a folder</li>
    </ul>
  </description>
  <launchable type="desktop-id">{APP_ID}.desktop</launchable>
  <provides>
    <binary>editedid</binary>
    <binary>editedid-cli</binary>
{mimes}
  </provides>
  <categories>
    <category>Graphics</category>
    <category>Photography</category>
  </categories>
  <keywords>
    <keyword>face</keyword>
    <keyword>identity</keyword>
    <keyword>restore</keyword>
    <keyword>photo</keyword>
  </keywords>
  <content_rating type="oars-1.1"/>
  <requires>
    <display_length compare="ge">1024</display_length>
  </requires>
  <supports>
    <control>pointing</control>
    <control>keyboard</control>
  </supports>
  <releases>
    <release version="{version}" date="{date}"/>
  </releases>
</component>
"""


def man_pages(man1: Path, version: str, date: str) -> None:
    head = '.TH {name} 1 "{date}" "EditedID {version}" "User Commands"\n'
    write_gz(
        man1 / "editedid.1.gz",
        head.format(name="EDITEDID", date=date, version=version)
        + r"""
.SH NAME
editedid \- restore faces changed by AI image editors (desktop app)
.SH SYNOPSIS
.B editedid
[\fIORIGINAL EDITED\fR | \fIPROJECT.editedid\fR]
.br
.B editedid \-\-self\-test
[\fB\-\-device\fR \fIDEVICE\fR]
.SH DESCRIPTION
Starts the EditedID Desktop window. Given two photos (the original and the edited one)
it opens them as a pair; given a project file it opens the project.
.TP
.B \-\-self\-test
Checks the installation without a window and without the network (libraries, GPU, a
small end-to-end restore), prints a PASS/FAIL report and exits 0 or 1.
.SH FILES
.TP
.I /opt/editedid
the application.
.TP
.I ~/.local/share/EditedID/models
downloaded models (kept when the package is removed; EDITEDID_MODELS_DIR overrides it).
.TP
.I ~/.config/EditedID
settings (kept when the package is removed).
.SH SEE ALSO
.BR editedid\-cli (1)
""",
    )
    write_gz(
        man1 / "editedid-cli.1.gz",
        head.format(name="EDITEDID-CLI", date=date, version=version)
        + r"""
.SH NAME
editedid-cli \- restore faces changed by AI image editors (command line)
.SH SYNOPSIS
.B editedid\-cli
\fICOMMAND\fR [\fIOPTIONS\fR]
.SH DESCRIPTION
The command line of EditedID Desktop: restore one photo pair, a folder of pairs, or
manage the models. Run
.B editedid\-cli \-\-help
and
.B editedid\-cli
\fICOMMAND\fR
.B \-\-help
for the commands and their options.
.SH EXAMPLES
.nf
editedid\-cli restore original.jpg edited.jpg \-o restored.png \-\-mode classic
.fi
.SH SEE ALSO
.BR editedid (1)
""",
    )


def bundled_components(bundle: Path) -> list[str]:
    """'name version: license' of every Python distribution the bundle carries."""
    lines = []
    for meta in sorted(bundle.glob("_internal/*.dist-info/METADATA")):
        msg = Parser().parsestr(
            meta.read_text(encoding="utf-8", errors="replace"), headersonly=True
        )
        lic = msg.get("License-Expression") or ""
        if not lic:
            raw = (msg.get("License") or "").strip().splitlines()
            lic = raw[0][:60] if raw and len(raw[0]) < 80 else ""
        if not lic:
            classifiers = [
                c.split("::")[-1].strip()
                for c in msg.get_all("Classifier") or []
                if c.startswith("License ::")
            ]
            lic = ", ".join(classifiers) or "see its metadata in /opt/editedid/_internal"
        lines.append(f"  {msg['Name']} {msg['Version']}: {lic}")
    return lines


def copyright_text(bundle: Path, license_: str) -> str:
    components = "\n".join(bundled_components(bundle))
    return f"""EditedID Desktop

Copyright: 2026 the EditedID Desktop authors
License: {license_}

On Debian systems the full text of the Apache License 2.0 is in
/usr/share/common-licenses/Apache-2.0.

/opt/editedid/_internal holds the libraries EditedID Desktop runs on, frozen by
PyInstaller with the Python interpreter (PSF-2.0) and Qt 6 through PySide6
(LGPL-3.0-only; the Qt libraries are unmodified shared libraries and can be
replaced). Their licence files are beside them in /opt/editedid/_internal/*.dist-info
and /opt/editedid/_internal/*.libs. The Python distributions bundled, with the
licence their metadata declares:

{components}

Models are not part of this package, except dlib's face models, which come with
face_recognition_models (listed above); the models the app downloads on request
come with their own licences.
"""


def changelog(version: str, date_rfc2822: str) -> str:
    return f"""{PACKAGE} ({version}) unstable; urgency=medium

  * Release {version.split("-")[0]} of EditedID Desktop, built from the PyInstaller bundle.
    See the project's README for what changed.

 -- {MAINTAINER}  {date_rfc2822}
"""


MAINTAINER_SCRIPT = """#!/bin/sh
# {what}
# Paths go through $DPKG_ROOT (empty on a normal install), so an install into another
# root with dpkg --root --force-script-chrootless (tests/test_packaging.py) updates that
# root's caches, never the host's.
set -e
case "$1" in
    {cases})
        # Debian's file triggers (desktop-file-utils, shared-mime-info, hicolor-icon-theme)
        # do this too; the calls cover systems without them.
        if command -v update-desktop-database >/dev/null 2>&1; then
            update-desktop-database -q "$DPKG_ROOT/usr/share/applications" || true
        fi
        if command -v update-mime-database >/dev/null 2>&1; then
            update-mime-database "$DPKG_ROOT/usr/share/mime" || true
        fi
        if command -v gtk-update-icon-cache >/dev/null 2>&1 \\
                && [ -f "$DPKG_ROOT/usr/share/icons/hicolor/index.theme" ]; then
            gtk-update-icon-cache -q -t -f "$DPKG_ROOT/usr/share/icons/hicolor" || true
        fi
        ;;
esac
{extra}exit 0
"""

PURGE = """# /opt belongs to no package (base-files' postinst creates it), so dpkg removed it with
# our files when EditedID was the only package listing it. The system keeps its /opt.
if [ "$1" = "remove" ] || [ "$1" = "purge" ]; then
    [ -d "$DPKG_ROOT/opt" ] || install -d -m 0755 "$DPKG_ROOT/opt"
fi
"""

PRERM = """#!/bin/sh
# prerm of editedid: Python caches the app may have written inside its folder (when it
# ran as root) go before dpkg removes the package's files, so its folders are empty and
# go with them (left for the purge, dpkg would remove /opt too, after postrm). A "models"
# folder someone put next to the program is user data and stays.
set -e
case "$1" in
    remove|upgrade|deconfigure)
        app="$DPKG_ROOT/opt/editedid"
        if [ -d "$app" ]; then
            find "$app" -depth -name __pycache__ -type d -exec rm -rf {} + 2>/dev/null || true
        fi
        ;;
esac
exit 0
"""


def build(bundle: Path, out: Path, variant: str, work: Path, compress: str) -> Path:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    license_ = project.get("license", {}).get("text", "Apache-2.0")
    version = f"{debian_version(project['version'])}-1+{variant}"
    date = subprocess.run(
        ["date", "-u", "+%Y-%m-%d"], capture_output=True, text=True
    ).stdout.strip()
    date_rfc = subprocess.run(["date", "-u", "-R"], capture_output=True, text=True).stdout.strip()

    deps = analyse(bundle)
    if deps["unknown"]:
        raise SystemExit(f"build_deb: no Debian package known for {deps['unknown']}")

    stage = work / f"{PACKAGE}_{version}_amd64"
    if stage.exists():
        shutil.rmtree(stage)
    copy_bundle(bundle, stage / "opt/editedid")
    usr = stage / "usr"
    launchers(usr)
    write(usr / f"share/applications/{APP_ID}.desktop", desktop_entry(project["version"]))
    write(usr / "share/mime/packages/editedid.xml", mime_package())
    write(
        usr / f"share/metainfo/{APP_ID}.metainfo.xml", metainfo(project["version"], date, license_)
    )
    source = Image.open(ROOT / "resources/icons/editedid.png").convert("RGBA")
    for size in ICON_SIZES:  # the source is 256 px: downscale only
        path = usr / f"share/icons/hicolor/{size}x{size}/apps/editedid.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        source.resize((size, size), Image.Resampling.LANCZOS).save(path, optimize=True)
    scalable = usr / "share/icons/hicolor/scalable/apps/editedid.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "resources/icons/editedid.svg", scalable)
    man_pages(usr / "share/man/man1", project["version"], date)
    doc = usr / "share/doc" / PACKAGE
    write(doc / "copyright", copyright_text(bundle, license_))
    write_gz(doc / "changelog.Debian.gz", changelog(version, date_rfc))
    # Not stripped: strip breaks the wheels' libraries that auditwheel patched with
    # patchelf ("ELF load command address/offset not page-aligned" for numpy's OpenBLAS;
    # the install test caught it). lintian's unstripped-binary-or-object is overridden.
    overrides = usr / "share/lintian/overrides" / PACKAGE
    overrides.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "packaging/lintian-overrides", overrides)
    normalise_modes(stage)

    control = stage / "DEBIAN"
    control.mkdir(mode=0o755)
    installed_kb = sum(p.lstat().st_size for p in stage.rglob("*") if not p.is_dir()) // 1024
    fields = {
        "Package": PACKAGE,
        "Version": version,
        "Architecture": "amd64",
        "Maintainer": MAINTAINER,
        "Installed-Size": str(installed_kb),
        "Depends": ", ".join(deps["depends"]),
        "Recommends": ", ".join(deps["recommends"]),
        "Suggests": "nvidia-driver" if variant.startswith("cu") else "",
        "Section": "graphics",
        "Priority": "optional",
        "Description": f"{SUMMARY} ({build_name(variant)} build)\n"
        + "\n".join(" " + line for line in DESCRIPTION.splitlines()),
    }
    write(control / "control", "".join(f"{k}: {v}\n" for k, v in fields.items() if v))
    sums = []
    for path in sorted(p for p in stage.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(stage).as_posix()
        if rel.startswith("DEBIAN/"):
            continue
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        sums.append(f"{digest.hexdigest()}  {rel}\n")
    write(control / "md5sums", "".join(sums))
    write(
        control / "postinst",
        MAINTAINER_SCRIPT.format(
            what="postinst of editedid: menu, icon and file-type caches.",
            cases="configure",
            extra="",
        ),
        0o755,
    )
    write(control / "prerm", PRERM, 0o755)
    write(
        control / "postrm",
        MAINTAINER_SCRIPT.format(
            what="postrm of editedid: menu, icon and file-type caches; /opt.",
            cases="remove|purge",
            extra=PURGE,
        ),
        0o755,
    )

    out.mkdir(parents=True, exist_ok=True)
    # Named like the other downloads (GitHub release assets keep only [A-Za-z0-9._-]).
    # gzip -1: the default -9 takes minutes on 1.5 GB for a few percent; xz at its default.
    level = ["-z1"] if compress == "gzip" else []
    deb = out / f"EditedID-{project['version']}-linux-amd64-{variant}.deb"
    subprocess.run(
        [
            "dpkg-deb",
            "--root-owner-group",
            f"-Z{compress}",
            *level,
            "--build",
            str(stage),
            str(deb),
        ],
        check=True,
    )
    shutil.rmtree(stage)
    return deb


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Build the EditedID .deb from the bundle.")
    parser.add_argument("bundle", type=Path, help="dist/EditedID")
    parser.add_argument("--variant", required=True, help="cpu, cu126, cu128, ...")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "deb")
    parser.add_argument(
        "--compress",
        default=os.environ.get("EDITEDID_DEB_COMPRESS", "gzip"),
        help="dpkg-deb compressor: gzip (default, level 1: fast) or xz (smallest, slow; the "
        "release workflow's). Not zstd: dpkg reads it, but lintian and Debian's archive tools "
        "reject it",
    )
    args = parser.parse_args(argv)
    deb = build(
        args.bundle.resolve(), args.out.resolve(), args.variant, args.work.resolve(), args.compress
    )
    print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

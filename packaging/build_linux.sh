#!/usr/bin/env bash
# Build the Linux bundle of EditedID Desktop with PyInstaller.
#
#   bash packaging/build_linux.sh                # uses .venv (or $PYTHON), any torch in it
#   EDITEDID_TORCH=cu128 bash packaging/build_linux.sh   # label only: install that torch first
#
# Produces
#   dist/EditedID/                                   runnable folder (./EditedID)
#   dist/EditedID/editedid.desktop, editedid.png     desktop entry and icon
#   dist/EditedID/install-desktop-entry.sh           adds it to the user's menu
#   dist/EditedID-<version>-linux-x86_64-<torch>.tar.gz
#   dist/EditedID-<version>-linux-amd64-<torch>.deb  Debian package (EDITEDID_DEB=0 skips it;
#                                    EDITEDID_DEB_COMPRESS=xz|zstd|gzip picks its compressor)
# and runs `dist/EditedID/EditedID --self-test` at the end (exit status = its result).
# AppImage: built only when `appimagetool` is on PATH (it is not installed offline here);
# set EDITEDID_APPIMAGE=0 to skip it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DIST="${EDITEDID_DIST:-$ROOT/dist}"
WORK="${EDITEDID_WORK:-$ROOT/build/pyinstaller}"
APP="$DIST/EditedID"

VERSION="$("$PYTHON" -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"
# Torch variant: what the installed torch is (cpu, cu126, cu128, ...) unless given.
VARIANT="${EDITEDID_TORCH:-$("$PYTHON" -c 'import torch; c=torch.version.cuda; print("cpu" if c is None else "cu"+c.replace(".","")[:3])')}"
ARCH="$(uname -m)"
NAME="EditedID-${VERSION}-linux-${ARCH}-${VARIANT}"
echo "== building $NAME with $("$PYTHON" -c 'import PyInstaller;print("PyInstaller", PyInstaller.__version__)')"

start=$(date +%s)
QT_QPA_PLATFORM=offscreen "$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "$WORK" packaging/editedid.spec
echo "== pyinstaller took $(( $(date +%s) - start )) s"

# Desktop entry and icon inside the folder, plus a script that installs them per user.
cp resources/icons/editedid.png "$APP/editedid.png"
# The same entry as the .deb's (build_deb.py), started from this folder.
"$PYTHON" - "$VERSION" > "$APP/editedid.desktop" <<'DESKTOP'
import sys
sys.path.insert(0, "packaging")
from build_deb import desktop_entry
print(desktop_entry(sys.argv[1], command="EditedID"), end="")
DESKTOP
cat > "$APP/install-desktop-entry.sh" <<'INSTALL'
#!/usr/bin/env bash
# Add EditedID to this user's application menu (run again after moving the folder).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
mkdir -p "$DATA/applications" "$DATA/icons/hicolor/256x256/apps"
cp "$HERE/editedid.png" "$DATA/icons/hicolor/256x256/apps/editedid.png"
sed -e "s|^Exec=.*|Exec=\"$HERE/EditedID\" %F|" -e "s|^TryExec=.*|TryExec=$HERE/EditedID|" \
    "$HERE/editedid.desktop" \
    > "$DATA/applications/editedid.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database "$DATA/applications" || true
echo "EditedID added to the application menu ($DATA/applications/editedid.desktop)."
INSTALL
chmod +x "$APP/install-desktop-entry.sh" "$APP/EditedID"

echo "== archiving $NAME.tar.gz"
rm -f "$DIST/$NAME.tar.gz"
tar -C "$DIST" -czf "$DIST/$NAME.tar.gz" --transform "s|^EditedID|$NAME|" EditedID

if [[ "${EDITEDID_DEB:-1}" != 0 ]]; then
    # Debian package from the same folder (installs to /opt/editedid; see build_deb.py).
    echo "== .deb"
    "$PYTHON" packaging/build_deb.py "$APP" --variant "$VARIANT" --out "$DIST"
fi

if [[ "${EDITEDID_APPIMAGE:-1}" != 0 ]] && command -v appimagetool >/dev/null; then
    echo "== AppImage"
    APPDIR="$WORK/EditedID.AppDir"
    rm -rf "$APPDIR" && mkdir -p "$APPDIR/usr"
    cp -a "$APP" "$APPDIR/usr/EditedID"
    cp "$APP/editedid.png" "$APPDIR/editedid.png"
    sed 's|^Exec=.*|Exec=EditedID %F|' "$APP/editedid.desktop" > "$APPDIR/editedid.desktop"
    printf '#!/bin/sh\nexec "$(dirname "$(readlink -f "$0")")/usr/EditedID/EditedID" "$@"\n' \
        > "$APPDIR/AppRun"
    chmod +x "$APPDIR/AppRun"
    ARCH="$ARCH" appimagetool "$APPDIR" "$DIST/$NAME.AppImage"
else
    echo "== AppImage skipped (appimagetool not on PATH); the .tar.gz is the Linux download"
fi

echo "== bundle: $(du -sh "$APP" | cut -f1) ($APP), archive: $(du -sh "$DIST/$NAME.tar.gz" | cut -f1)"
echo "== self-test"
"$APP/EditedID" --self-test

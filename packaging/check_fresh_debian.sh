#!/usr/bin/env bash
# Install the .deb on a freshly bootstrapped Debian 12 the way a user's machine does, use
# it as a normal user, purge it, and check that the system is as before.
#
#   sudo bash packaging/check_fresh_debian.sh EditedID-...-cpu.deb ORIGINAL EDITED OUTDIR
#
# 1. root: `debootstrap --variant=minbase bookworm` from the Debian mirror apt already uses
#    (read from /etc/apt/sources.list(.d) here, never written anywhere), cached as a tar
#    under $EDITEDID_FRESH_CACHE (default /var/cache/editedid-fresh-debian), one per day
#    (older ones are deleted); each run unpacks a pristine copy into /var/tmp.
# 2. /proc, /sys, /dev (+ pts, shm) and the host's /tmp/.X11-unix mounted into it; a user
#    `alice` (uid 1000); ORIGINAL and EDITED copied into her home.
# 3. `apt-get install --no-install-recommends ./x.deb` (no --force-*: apt resolves the
#    Depends from the mirror; without the Recommends, so Depends alone must be enough).
# 4. as alice: `editedid --self-test`; `editedid-cli restore --mode classic` into a folder
#    that does not exist yet; the GUI on an Xvfb display of the host (its number chosen by
#    Xvfb: -displayfd), opening the pair from its command line: the window title names
#    the edited photo, and a screenshot's menu bar holds real glyphs, not empty boxes
#    (packaging/screen_text.py); then only EditedID's own folders in her home.
# 5. `apt-get purge --autoremove editedid`: the file list (`find -xdev`, names, modes,
#    owners; apt's caches and lists, logs, debconf's cache and her home left out) and the
#    package set (`dpkg-query -W`) equal the ones before the install.
# Everything is unmounted and removed afterwards, also on failure. Prints "== step <name>:
# <s> s" per step, apt's download and disk sizes and the Depends apt saw; writes
# screenshot.png and the logs to OUTDIR. Exit status 0 only if every check passed.
# Needs root, debootstrap, Xvfb, xwininfo (x11-utils), import (imagemagick) and $PYTHON
# (default .venv/bin/python, for screen_text.py: numpy, scipy, Pillow).
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT_DIR/.venv/bin/python}"
DEB="$(realpath "$1")"
ORIGINAL="$(realpath "$2")"
EDITED="$(realpath "$3")"
OUT="$(mkdir -p "$4" && realpath "$4")"
SUITE=bookworm
CACHE="${EDITEDID_FRESH_CACHE:-/var/cache/editedid-fresh-debian}"
USER_NAME=alice
USER_HOME=/home/$USER_NAME
EDITED_NAME="edited.${EDITED##*.}"
ORIGINAL_NAME="original.${ORIGINAL##*.}"

[[ $EUID -eq 0 ]] || { echo "check_fresh_debian: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
for tool in debootstrap Xvfb xwininfo import chroot; do
    command -v "$tool" >/dev/null || { echo "check_fresh_debian: $tool is missing" >&2; exit 2; }
done

ROOT=""
MOUNTS=()
XVFB_PID=""
GUI_PID=""
cleanup() {
    local rc=$? m i
    [[ -n $GUI_PID ]] && kill -KILL -- "-$GUI_PID" 2>/dev/null
    [[ -n $XVFB_PID ]] && kill "$XVFB_PID" 2>/dev/null && wait "$XVFB_PID" 2>/dev/null
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        m="${MOUNTS[$i]}"
        umount "$m" 2>/dev/null || umount -l "$m" || true
    done
    # remove the root only when nothing is mounted below it any more (a leftover bind
    # mount of /dev would otherwise take the host's device nodes with it)
    if [[ -n $ROOT && -d $ROOT ]]; then
        if grep -q " $ROOT/" /proc/mounts; then
            echo "check_fresh_debian: mounts left under $ROOT, not removing it" >&2
        else
            rm -rf --one-file-system "$ROOT"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "check_fresh_debian: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

T0=$(date +%s.%N)
step() {  # print the time since the previous step
    local now
    now=$(date +%s.%N)
    printf '== step %s: %.1f s\n' "$1" "$(echo "$now - $T0" | bc)"
    T0=$now
}

debian_mirror() {  # the first "deb" URI of $SUITE in apt's sources (deb822 or one-line)
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
            { types = uris = suites = ""; off = 0
              for (i = 1; i <= NF; i++) {
                  if ($i ~ /^Types:/) types = $i " "
                  if ($i ~ /^URIs:/) uris = $i
                  if ($i ~ /^Suites:/) suites = $i " "
                  if ($i ~ /^Enabled:[ \t]*no/) off = 1
              }
              if (!off && types ~ /[ \t]deb[ \t]/ && suites ~ ("[ \t]" suite "[ \t]")) {
                  sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/); print u[1]; exit
              } }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk -v suite="$SUITE" '$1 == "deb" { i = 2
            if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) { print $i; exit } }' "$f"
    done
}

# --- 1. the root ---------------------------------------------------------------------
MIRROR="$(debian_mirror | head -n 1)"
[[ -n $MIRROR ]] || { echo "check_fresh_debian: no '$SUITE' mirror in apt's sources" >&2; exit 2; }
mkdir -p "$CACHE"
TARBALL="$CACHE/$SUITE-minbase-$(date -u +%Y%m%d).tar"
if [[ ! -f $TARBALL ]]; then
    echo "== debootstrap --variant=minbase $SUITE from $MIRROR"
    PROTO="$(mktemp -d "$CACHE/proto.XXXXXX")"
    chmod 0755 "$PROTO"  # mktemp makes it 0700: as the root's "/", no user could enter it
    debootstrap --variant=minbase "$SUITE" "$PROTO" "$MIRROR" > "$OUT/debootstrap.log" 2>&1 \
        || { tail -20 "$OUT/debootstrap.log"; rm -rf --one-file-system "$PROTO"; exit 1; }
    tar -C "$PROTO" -cf "$TARBALL.part" . && mv "$TARBALL.part" "$TARBALL"
    rm -rf --one-file-system "$PROTO"
    find "$CACHE" -maxdepth 1 -name "$SUITE-minbase-*.tar" ! -path "$TARBALL" -delete
    step "debootstrap (cached as $(basename "$TARBALL"))"
fi
ROOT="$(mktemp -d /var/tmp/editedid-fresh.XXXXXX)"
tar -C "$ROOT" -xf "$TARBALL"
# "/" of a system is 0755. mktemp's 0700 (here, or kept in a tarball cached by an older
# version of this script) made every command run as the user fail: "chroot: failed to run
# command '/usr/bin/env': Permission denied" (the CI rehearsal of 2026-12-07).
chmod 0755 "$ROOT"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
step "unpack the cached root"

# --- 2. mounts, user, photos ------------------------------------------------------------
mount_into() {  # mount ARGS... TARGET (TARGET relative to the root)
    local target="$ROOT/${*: -1}"
    mkdir -p "$target"
    mount "${@:1:$#-1}" "$target"
    MOUNTS+=("$target")
}
mount_into -t proc proc /proc
mount_into -t sysfs sysfs /sys
mount_into --bind /dev /dev
mount_into --bind /dev/pts /dev/pts
mount_into -t tmpfs tmpfs /dev/shm
mount_into --bind /tmp/.X11-unix /tmp/.X11-unix
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
as_user() {
    chroot --userspec=1000:1000 "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
        HOME="$USER_HOME" USER="$USER_NAME" LOGNAME="$USER_NAME" "$@"
}
in_root useradd --create-home --uid 1000 --shell /bin/bash "$USER_NAME"
install -o 1000 -g 1000 -d "$ROOT$USER_HOME/photos"
install -o 1000 -g 1000 -m 0644 "$ORIGINAL" "$ROOT$USER_HOME/photos/$ORIGINAL_NAME"
install -o 1000 -g 1000 -m 0644 "$EDITED" "$ROOT$USER_HOME/photos/$EDITED_NAME"
cp "$DEB" "$ROOT/tmp/editedid.deb"

snapshot() {  # the system's files and packages (not her home, apt's caches, logs)
    (cd "$ROOT" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev \
        -o -path ./tmp -o -path ./home -o -path ./var/cache/apt -o -path ./var/lib/apt \
        -o -path ./var/log -o -path ./var/cache/debconf -o -path ./root \) -prune \
        -o -printf '%p %M %u:%g\n' | LC_ALL=C sort) > "$OUT/files-$1.txt"
    in_root dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\n' \
        | grep -v '^[up]n ' | LC_ALL=C sort > "$OUT/packages-$1.txt"
}
snapshot before
step "mounts, user, snapshot"

# --- 3. install --------------------------------------------------------------------------
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    /tmp/editedid.deb > "$OUT/apt-install.log" 2>&1 || { tail -40 "$OUT/apt-install.log"; exit 1; }
rm -f "$ROOT/tmp/editedid.deb"
grep -E "^(Need to get|After this operation|[0-9]+ upgraded)" "$OUT/apt-install.log" | sed 's/^/== apt: /'
echo "== Depends: $(in_root dpkg-query -W -f '${Depends}' editedid)"
echo "== Recommends: $(in_root dpkg-query -W -f '${Recommends}' editedid)"
step "apt-get install ./deb"

# --- 4. use it as alice ------------------------------------------------------------------
as_user editedid --self-test > "$OUT/self-test.log" 2>&1 || { cat "$OUT/self-test.log"; exit 1; }
grep -q "^RESULT: PASS" "$OUT/self-test.log" || { cat "$OUT/self-test.log"; exit 1; }
echo "== self-test: $(grep "^RESULT:" "$OUT/self-test.log")"
step "editedid --self-test"

as_user editedid-cli restore --original "$USER_HOME/photos/$ORIGINAL_NAME" \
    --edited "$USER_HOME/photos/$EDITED_NAME" --out "$USER_HOME/results/new/restored.png" \
    --mode classic --face-backend dlib --faces all > "$OUT/restore.log" 2>&1 \
    || { cat "$OUT/restore.log"; exit 1; }
[[ -s "$ROOT$USER_HOME/results/new/restored.png" && -s "$ROOT$USER_HOME/results/new/restored.png.json" ]] \
    || { echo "restore wrote no result"; cat "$OUT/restore.log"; exit 1; }
echo "== restore: $(tail -n 1 "$OUT/restore.log")"
step "editedid-cli restore --mode classic"

mkfifo "$OUT/tick"
exec {fd}<> "$OUT/tick"  # read -t on it waits between tries (a FIFO open read-write has no EOF)
DISPLAY_FILE="$OUT/xvfb-display"
Xvfb -displayfd 9 -screen 0 1920x1080x24 -nolisten tcp 9> "$DISPLAY_FILE" 2> "$OUT/xvfb.log" &
XVFB_PID=$!
wait_for() {  # seconds, command...: run it until it succeeds (status 0) or time runs out
    local until=$(($(date +%s) + $1))
    shift
    until "$@"; do
        (($(date +%s) < until)) || return 1
        read -r -t 0.2 -u "$fd" || true  # 0.2 s between tries, without a sleep process
    done
}
wait_for 30 test -s "$DISPLAY_FILE" || { echo "Xvfb gave no display"; cat "$OUT/xvfb.log"; exit 1; }
DISPLAY=":$(head -n 1 "$DISPLAY_FILE")"
export DISPLAY
setsid chroot --userspec=1000:1000 "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
    HOME="$USER_HOME" USER="$USER_NAME" DISPLAY="$DISPLAY" \
    editedid "$USER_HOME/photos/$ORIGINAL_NAME" "$USER_HOME/photos/$EDITED_NAME" \
    > "$OUT/gui.log" 2>&1 &
GUI_PID=$!
alive() { [[ -e /proc/$1 ]] && ! grep -qE '^[0-9]+ \(.*\) Z' "/proc/$1/stat"; }  # not a zombie
window_line() { xwininfo -root -tree 2>/dev/null | grep -F "\"$EDITED_NAME" | head -n 1; }
gui_window() { alive "$GUI_PID" && [[ -n "$(window_line)" ]]; }
if ! wait_for 180 gui_window; then
    echo "GUI: no window titled '$EDITED_NAME ...' (the pair was not opened)"; cat "$OUT/gui.log"; exit 1
fi
LINE="$(window_line)"
echo "== GUI window: $LINE"
# "  0x400007 "edited.png — EditedID": ("EditedID" "EditedID")  1280x800+0+0  +0+0"
read -r WIDTH X Y < <(sed -E 's/.* ([0-9]+)x[0-9]+[+-][0-9]+[+-][0-9]+ +\+(-?[0-9]+)\+(-?[0-9]+).*/\1 \2 \3/' <<< "$LINE")
judge() {  # screenshot; 0 readable, 1 boxes: done; 2 (no menu bar drawn yet): again
    import -window root "$OUT/screenshot.png" 2>/dev/null || return 1
    "$PYTHON" "$ROOT_DIR/packaging/screen_text.py" "$OUT/screenshot.png" "$X" "$Y" "$WIDTH" \
        > "$OUT/screen-text.txt"
}
text_drawn() { local rc=0; judge || rc=$?; ((rc != 2)); }
wait_for 60 text_drawn || true
cat "$OUT/screen-text.txt"
kill -TERM -- "-$GUI_PID" 2>/dev/null || true
gone() { ! alive "$GUI_PID"; }
wait_for 30 gone || kill -KILL -- "-$GUI_PID" 2>/dev/null || true
wait "$GUI_PID" 2>/dev/null || true
GUI_PID=""
grep -q "^screen_text: readable text" "$OUT/screen-text.txt" || { echo "GUI: text not readable"; cat "$OUT/gui.log"; exit 1; }
step "GUI under Xvfb"

# only EditedID's own folders (and what this check put there) in her home
(cd "$ROOT$USER_HOME" && find . -type f | LC_ALL=C sort) > "$OUT/home-files.txt"
STRAY="$(grep -vE '^\./(photos/|results/|\.local/share/EditedID/|\.config/EditedID/|\.cache/EditedID/|\.bash|\.profile)' "$OUT/home-files.txt" || true)"
if [[ -n $STRAY ]]; then
    echo "files written outside EditedID's folders in the home:"; echo "$STRAY"; exit 1
fi

# --- 5. purge ----------------------------------------------------------------------------
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y --autoremove editedid \
    > "$OUT/apt-purge.log" 2>&1 || { tail -40 "$OUT/apt-purge.log"; exit 1; }
snapshot after
step "apt-get purge --autoremove"
if ! diff -u "$OUT/files-before.txt" "$OUT/files-after.txt" > "$OUT/files.diff" \
    || ! diff -u "$OUT/packages-before.txt" "$OUT/packages-after.txt" > "$OUT/packages.diff"; then
    echo "the system differs after the purge:"; cat "$OUT/files.diff" "$OUT/packages.diff" | head -60
    exit 1
fi
echo "== purge: $(wc -l < "$OUT/files-before.txt") files and $(wc -l < "$OUT/packages-before.txt") packages as before"
echo "check_fresh_debian: OK"

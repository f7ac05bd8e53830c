"""Packaging: static checks of the PyInstaller spec and installers, the .deb built from a
stand-in bundle and installed into a throwaway dpkg root (fast, default run); the real
Linux bundle build + --self-test, and its .deb installed and used (slow; `pytest -m slow`)."""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
SPEC = PACKAGING / "editedid.spec"


def _spec_tree() -> ast.Module:
    return ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
    ]


def _string_list(tree: ast.AST, target: str) -> list[str]:
    """String elements of every list literal assigned or +='d to `target` in the spec."""
    out: list[str] = []
    for node in ast.walk(tree):
        value = None
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == target for t in node.targets
        ):
            value = node.value
        elif isinstance(node, ast.AugAssign) and getattr(node.target, "id", None) == target:
            value = node.value
        if isinstance(value, ast.List):
            out += [e.value for e in value.elts if isinstance(e, ast.Constant)]
    return out


def test_spec_is_a_one_folder_build_of_the_entry_script():
    text = SPEC.read_text(encoding="utf-8")
    tree = _spec_tree()
    assert len(_calls(tree, "COLLECT")) == 1, "one-folder build: exactly one COLLECT"
    for exe in _calls(tree, "EXE"):  # one-file would pack a.binaries into the EXE
        assert not any(isinstance(a, ast.Attribute) and a.attr == "binaries" for a in exe.args)
    assert "exclude_binaries=True" in text
    assert "onefile" not in text.replace("one-file", "")
    (analysis,) = _calls(tree, "Analysis")
    assert "'editedid_entry.py'" in ast.unparse(analysis.args[0])
    entry = PACKAGING / "editedid_entry.py"
    assert entry.is_file()
    entry_text = entry.read_text(encoding="utf-8")
    for flag in (
        "--self-test",
        "--cli",
        "run_self_test",
        "from engine.cli import main",
        "editedid_desktop.app",
    ):
        assert flag in entry_text


def test_spec_bundles_resources_models_data_and_metadata():
    text = SPEC.read_text(encoding="utf-8")
    assert '(str(ROOT / "resources"), "resources")' in text  # engine/resources.py: _MEIPASS
    assert 'tomllib.load(f)["project"]["version"]' in text  # version from pyproject
    assert "upx=False" in text
    # data, metadata and small packages' modules come from the run-time closure
    assert "CONTENTS = plan()" in text
    for call in ("copy_metadata(dist)", "collect_data_files(package, excludes=DATA_EXCLUDES)"):
        assert call in text
    assert 'for package in CONTENTS["submodules"]:' in text
    tree = _spec_tree()
    modes = next(
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "module_collection_mode"
    )
    modes = ast.literal_eval(modes)
    assert modes["torch"] == modes["transformers"] == "pyz+py"


def test_the_run_time_closure_brings_data_metadata_and_modules_of_every_dependency():
    """What the spec collects follows the installed distributions (bundle_contents.plan):
    transformers 5.x requires kernels, which reads its _internals/python_depends.json at
    import; the closure brings its data and modules without a line naming it."""
    from PyInstaller.utils.hooks import collect_data_files

    closure = bundle_contents.runtime_closure()
    assert {"torch", "diffusers", "transformers", "insightface", "onnxruntime", "dlib-bin"} <= set(
        closure
    )
    assert "pytest" not in closure and "ruff" not in closure  # the [dev] extra is not run time
    for name, dist in closure.items():  # closed under installed, unconditional requirements
        for line in dist.requires or []:
            req = bundle_contents.Requirement(line)
            if req.marker is None and importlib.util.find_spec(req.name.replace("-", "_")):
                assert bundle_contents.canonicalize_name(req.name) in closure, (name, line)
    plan = bundle_contents.plan()
    assert {"insightface", "face_recognition_models", "huggingface_hub"} <= set(plan["data"])
    assert "transformers" in plan["data"] and "transformers" not in plan["submodules"]
    # qtpy/superqt wrap every Qt module: collecting all of theirs bundled QML, SQL drivers,
    # multimedia and 400 MB more; the analysis follows what the app imports
    assert not {"qtpy", "superqt"} & set(plan["submodules"])
    assert not {"PySide6", "torch"} & set(plan["data"])  # their hooks trim what Qt/torch need
    data = [
        dest + "/" + Path(src).name
        for package in plan["data"]
        for src, dest in collect_data_files(package, excludes=bundle_contents.DATA_EXCLUDES)
    ]
    assert "insightface/data/images/t1.jpg" in data  # --self-test's photo
    assert any(d.startswith("face_recognition_models/models/") and d.endswith(".dat") for d in data)
    assert not [d for d in data if d.endswith((".so", ".h", ".cpp")) or "/tests/" in d]
    if "kernels" in closure:  # transformers 5.x
        assert "kernels/_internals/python_depends.json" in data
        assert "kernels" in plan["submodules"] and "kernels" in plan["data"]
        assert "kernels" in plan["metadata"]


def test_no_bundled_library_writes_into_the_users_home(tmp_path):
    """onnxruntime (insightface's runtime) keeps a telemetry device id and database in
    ~/.cache/Microsoft/DeveloperTools/.onnxruntime from its first session on Linux; the
    privacy defaults that `import engine` applies switch it off (ORT_DISABLE_TELEMETRY)."""
    code = """
import engine, numpy as np, onnxruntime as ort
from onnx import TensorProto, helper
io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in "xy"]
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", io[:1], io[1:])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
print(session.run(None, {"x": np.array([-1.0], np.float32)})[0][0])
"""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "ORT_"))}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env | {"HOME": str(home)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.strip() == "0.0", done.stderr[-3000:]  # the session ran
    assert not list(home.rglob("*")), list(home.rglob("*"))


def test_the_build_machines_system_libraries_are_never_bundled():
    is_host = bundle_contents.is_host_library
    assert is_host("/usr/lib/x86_64-linux-gnu/libgtk-3.so.0", "BINARY")
    assert is_host("/lib/x86_64-linux-gnu/libxcb-icccm.so.4", "BINARY")
    site = "/work/.venv/lib/python3.11/site-packages"
    assert not is_host(f"{site}/PySide6/Qt/lib/libQt6Gui.so.6", "BINARY")  # a wheel's
    assert not is_host("/usr/lib/python3/dist-packages/numpy.libs/libopenblas.so", "BINARY")
    assert not is_host("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0", "BINARY")
    assert not is_host("/usr/lib/python3.11/lib-dynload/_ssl.cpython-311.so", "EXTENSION")
    toc = [
        ("libgtk-3.so.0", "/usr/lib/x86_64-linux-gnu/libgtk-3.so.0", "BINARY"),
        ("PySide6/Qt/lib/libQt6Gui.so.6", f"{site}/PySide6/Qt/lib/libQt6Gui.so.6", "BINARY"),
    ]
    kept, dropped = bundle_contents.without_host_libraries(toc)
    assert kept == toc[1:] and dropped == ["libgtk-3.so.0"]


def test_spec_hidden_imports_and_collected_packages_exist():
    tree = _spec_tree()
    hidden = _string_list(tree, "hiddenimports")
    collected = [
        c.args[0].value
        for c in _calls(tree, "collect_submodules")
        if c.args and isinstance(c.args[0], ast.Constant)
    ]
    loop = [
        e.value
        for n in ast.walk(tree)
        if isinstance(n, ast.For) and isinstance(n.iter, ast.Tuple)
        for e in n.iter.elts
        if isinstance(e, ast.Constant)
    ]
    names = hidden + collected + loop
    assert {"engine", "editedid_desktop", "diffusers.models", "transformers.models.clip"} <= set(
        names
    )
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    assert not missing, f"hidden imports that do not exist: {missing}"
    excludes = set(_string_list(tree, "excludes"))
    assert {"tkinter", "IPython", "pytest", "torchvision"} <= excludes
    used = {
        "torch",
        "diffusers",
        "transformers",
        "PySide6",
        "cv2",
        "insightface",
        "dlib",
        "onnxruntime",
        "scipy",
        "numpy",
        "PIL",
        "superqt",
        "safetensors",
        "huggingface_hub",
    }
    assert not used & excludes


def test_icons_and_installer_scripts_are_there():
    icons = ROOT / "resources" / "icons"
    for name in ("editedid.png", "editedid.ico", "editedid.svg"):
        assert (icons / name).is_file(), name
    iss = (PACKAGING / "editedid.iss").read_text(encoding="utf-8")
    for needed in (
        "DiskSpanning=yes",
        "vc_redist.x64.exe",
        "PrivilegesRequiredOverridesAllowed",
        "UninstallDisplayIcon",
        "desktopicon",
        "{group}",
        r"dist\EditedID",
    ):
        assert needed in iss, needed
    ps1 = (PACKAGING / "build_windows.ps1").read_text(encoding="utf-8")
    for needed in ('"cpu", "cu126", "cu128"', "--self-test", "ISCC", "editedid.spec"):
        assert needed in ps1, needed
    for script in ("build_linux.sh", "check_linux_bundle.sh"):
        subprocess.run(["bash", "-n", str(PACKAGING / script)], check=True)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version


def test_entry_script_dispatches_to_the_cli():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(
        [sys.executable, str(PACKAGING / "editedid_entry.py"), "--cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "restore" in out.stdout


@pytest.fixture(scope="module")
def linux_bundle_check() -> str:
    """Build the Linux bundle and its .deb ONCE per test run (check_linux_bundle.sh, about
    10-20 min on 2 cores; tests/test_fresh_debian.py reuses the same build); its log."""
    from tests.bundle_build import linux_bundle_check

    code, log = linux_bundle_check()
    assert code == 0, log[-6000:]
    return log


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds the Linux bundle")
def test_linux_bundle_builds_and_passes_its_self_test(linux_bundle_check):
    log = linux_bundle_check
    assert "RESULT: PASS" in log and "bundle size:" in log
    assert re.search(r"== deb: \d+ MB .*EditedID-.*-linux-amd64-cpu\.deb", log)


# --- the Debian package -----------------------------------------------------------------
# Fast tests build the .deb from a stand-in bundle (a script named EditedID, a copy of
# /usr/bin/dpkg as its "library", one dist-info) with the real packaging/build_deb.py and
# check it against the rules lintian checks (control fields, permissions, md5sums,
# copyright, changelog): these checks are NOT lintian, which is too slow for the default
# run on a 1.5 GB package (packaging/README.md has its real output). The slow test
# installs the real bundle's .deb.

sys.path.insert(0, str(PACKAGING))
import build_deb  # noqa: E402
import bundle_contents  # noqa: E402
import deb_depends  # noqa: E402
import screen_text  # noqa: E402

needs_dpkg = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and shutil.which("dpkg-deb") and shutil.which("objdump")),
    reason="Debian packaging needs dpkg-deb and objdump (Debian/Ubuntu build machine)",
)
STAND_IN = """#!/bin/sh
# stand-in for the PyInstaller executable: says how it was called, writes nothing
echo "EditedID called with: $*"
"""


def _stand_in_bundle(root: Path, ship_libmd: bool = False) -> Path:
    bundle = root / "EditedID"
    (bundle / "_internal" / "demo-1.0.dist-info").mkdir(parents=True)
    (bundle / "EditedID").write_text(STAND_IN)
    (bundle / "EditedID").chmod(0o700)  # the package must normalise odd modes
    shutil.copy(shutil.which("dpkg"), bundle / "_internal" / "libdemo.so")
    (bundle / "_internal" / "demo-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nLicense-Expression: MIT\n"
    )
    (bundle / "install-desktop-entry.sh").write_text("#!/bin/sh\n")  # per-user extra
    if ship_libmd:
        (bundle / "_internal" / "libmd.so.0").write_bytes(b"not needed from the system")
    return bundle


@pytest.fixture(scope="module")
def stand_in_deb(tmp_path_factory) -> Path:
    # only @needs_dpkg tests use it: a Debian/Ubuntu build machine has both tools
    root = tmp_path_factory.mktemp("deb")
    return build_deb.build(_stand_in_bundle(root), root / "out", "cu128", root / "work", "gzip")


def _deb_files(deb: Path) -> dict[str, tuple[str, str, int]]:
    """path -> (mode string, owner/group, size) as `dpkg-deb -c` lists them."""
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    )
    out = {}
    for line in listing.stdout.splitlines():
        mode, owner, size, _date, _time, path = line.split(None, 5)
        out[path.split(" -> ")[0].removeprefix("./").rstrip("/")] = (mode, owner, int(size))
    return out


def _extract(deb: Path, dest: Path) -> Path:
    subprocess.run(["dpkg-deb", "-R", str(deb), str(dest)], check=True)
    return dest


@needs_dpkg
def test_deb_control_fields_follow_debian_policy(stand_in_deb):
    assert stand_in_deb.name == "EditedID-0.1.0-linux-amd64-cu128.deb"
    info = subprocess.run(
        ["dpkg-deb", "-f", str(stand_in_deb)], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", info, flags=re.M))
    assert fields["Package"] == "editedid"
    assert re.fullmatch(r"\d+(\.\d+)*(~\w+)?-1\+cu128", fields["Version"])
    assert fields["Architecture"] == "amd64"
    assert re.fullmatch(r".+ <[^@\s]+@[^@\s]+\.\w+>", fields["Maintainer"])
    assert fields["Section"] == "graphics" and fields["Priority"] == "optional"
    assert int(fields["Installed-Size"]) > 0
    # libc floor from the GLIBC_ versions of the "library"; libmd0/libselinux1 from their
    # shlibs files, as dpkg-shlibdeps would give them
    depends = fields["Depends"].split(", ")
    assert any(re.fullmatch(r"libc6 \(>= 2\.\d+\)", d) for d in depends), depends
    assert any(d.startswith("libmd0") for d in depends), depends
    synopsis = fields["Description"]
    assert len(synopsis) < 80 and not synopsis.lower().startswith("editedid")
    long_description = info.split("Description:", 1)[1].splitlines()[1:]
    assert len(long_description) >= 3 and all(line.startswith(" ") for line in long_description)
    assert "CUDA 12.8" in synopsis


@needs_dpkg
def test_deb_files_permissions_md5sums_copyright_changelog(stand_in_deb, tmp_path):
    files = _deb_files(stand_in_deb)
    for path, (mode, owner, _size) in files.items():
        assert owner == "root/root", path
        if mode.startswith("d"):
            assert mode == "drwxr-xr-x", path
        elif not mode.startswith("l"):
            assert mode in ("-rw-r--r--", "-rwxr-xr-x"), (path, mode)
    assert files["opt/editedid/EditedID"][0] == "-rwxr-xr-x"  # was 0700 in the bundle
    bundle = stand_in_deb.parent.parent / "EditedID"
    assert (bundle / "EditedID").stat().st_mode & 0o777 == 0o700  # and still is there
    assert files["usr/bin/editedid"][0] == files["usr/bin/editedid-cli"][0] == "-rwxr-xr-x"
    assert "opt/editedid/install-desktop-entry.sh" not in files  # per-user extras stay out
    tree = _extract(stand_in_deb, tmp_path / "x")
    sums = (tree / "DEBIAN" / "md5sums").read_text().splitlines()
    listed = {line.split("  ", 1)[1] for line in sums}
    regular = {p for p, (mode, _o, _s) in files.items() if mode.startswith("-")}
    assert listed == regular
    for line in sums:
        digest, rel = line.split("  ", 1)
        assert hashlib.md5((tree / rel).read_bytes()).hexdigest() == digest, rel
    copyright_text = (tree / "usr/share/doc/editedid/copyright").read_text()
    assert "/usr/share/common-licenses/Apache-2.0" in copyright_text
    assert "demo 1.0: MIT" in copyright_text  # bundled components listed from metadata
    changelog = gzip.decompress((tree / "usr/share/doc/editedid/changelog.Debian.gz").read_bytes())
    first = changelog.decode().splitlines()[0]
    assert re.fullmatch(r"editedid \(\S+-1\+cu128\) unstable; urgency=medium", first)
    assert re.search(r"^ -- .+ <.+>  \w{3}, \d{2} \w{3} \d{4}", changelog.decode(), flags=re.M)
    for man in ("editedid.1.gz", "editedid-cli.1.gz"):
        assert gzip.decompress((tree / "usr/share/man/man1" / man).read_bytes()).startswith(b".TH ")
    for script in ("postinst", "prerm", "postrm"):
        path = tree / "DEBIAN" / script
        assert path.stat().st_mode & 0o777 == 0o755
        subprocess.run(["sh", "-n", str(path)], check=True)
        assert "DPKG_ROOT" in path.read_text()  # never the host's caches in a --root install


@needs_dpkg
def test_deb_desktop_entry_icons_mime_and_metainfo(stand_in_deb, tmp_path):
    import configparser
    import xml.etree.ElementTree as ET

    from PIL import Image

    tree = _extract(stand_in_deb, tmp_path / "x")
    desktop_files = list((tree / "usr/share/applications").glob("*.desktop"))
    assert [p.name for p in desktop_files] == [f"{build_deb.APP_ID}.desktop"]
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(desktop_files[0])
    d = entry["Desktop Entry"]
    assert d["Exec"] == "editedid %F" and d["Icon"] == "editedid" and d["Terminal"] == "false"
    mime = d["MimeType"].split(";")
    assert {"image/jpeg", "image/png", "image/tiff", "image/webp", build_deb.PROJECT_MIME} <= set(
        mime
    )
    assert mime[-1] == ""  # the list ends with ';' (desktop-entry spec)
    if shutil.which("desktop-file-validate"):  # freedesktop's validator, when installed
        out = subprocess.run(
            ["desktop-file-validate", str(desktop_files[0])], capture_output=True, text=True
        )
        assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr
    for size in build_deb.ICON_SIZES:
        png = tree / f"usr/share/icons/hicolor/{size}x{size}/apps/editedid.png"
        with Image.open(png) as im:
            assert im.size == (size, size) and im.mode == "RGBA"
    assert (tree / "usr/share/icons/hicolor/scalable/apps/editedid.svg").is_file()
    types = ET.parse(tree / "usr/share/mime/packages/editedid.xml").getroot()
    ns = "{http://www.freedesktop.org/standards/shared-mime-info}"
    (project,) = types.findall(f"{ns}mime-type")
    assert project.get("type") == build_deb.PROJECT_MIME
    assert project.find(f"{ns}glob").get("pattern") == "*.editedid"
    meta_path = tree / f"usr/share/metainfo/{build_deb.APP_ID}.metainfo.xml"
    meta = ET.parse(meta_path).getroot()
    assert meta.get("type") == "desktop-application" and meta.findtext("id") == build_deb.APP_ID
    assert meta.find("launchable").text == desktop_files[0].name
    assert meta.findtext("project_license") == "Apache-2.0"
    assert {b.text for b in meta.iter("binary")} == {"editedid", "editedid-cli"}
    if shutil.which("appstreamcli"):  # the AppStream reference validator, when installed
        out = subprocess.run(
            ["appstreamcli", "validate", "--no-net", "--pedantic", str(meta_path)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout + out.stderr


@needs_dpkg
@pytest.mark.slow
def test_lintian_finds_no_error_in_the_stand_in_package(stand_in_deb):
    """lintian itself (Debian's package; about 10 s here): no errors beyond the
    overrides packaging/lintian-overrides explains. In the slow tier, where the system
    tools are hard dependencies: a missing lintian fails (.ci/run installs it)."""
    if not shutil.which("lintian"):
        pytest.fail("lintian is not installed (apt-get install lintian; .ci/run does)")
    out = subprocess.run(
        ["lintian", "--fail-on", "error", str(stand_in_deb)], capture_output=True, text=True
    )
    errors = [line for line in out.stdout.splitlines() if line.startswith("E:")]
    assert out.returncode == 0 and not errors, out.stdout + out.stderr


def _dpkg_root(root: Path) -> list[str]:
    """A throwaway dpkg database: a fresh admindir knows no installed package."""
    admin = root / "var/lib/dpkg"
    for sub in ("info", "updates", "triggers"):
        (admin / sub).mkdir(parents=True, exist_ok=True)
    for name in ("status", "available"):
        (admin / name).touch()
    # What any desktop system has: the shared MIME database's own package file, so the
    # maintainer scripts rebuild the cache (without it update-mime-database does nothing).
    packages = root / "usr/share/mime/packages"
    packages.mkdir(parents=True, exist_ok=True)
    (packages / "base.xml").write_text(
        '<?xml version="1.0"?>\n<mime-info xmlns="http://www.freedesktop.org/standards/'
        'shared-mime-info"><mime-type type="text/plain"><glob pattern="*.txt"/>'
        "</mime-type></mime-info>\n"
    )
    # and the icon theme (gtk-update-icon-cache only indexes a theme with an index.theme)
    theme = root / "usr/share/icons/hicolor"
    theme.mkdir(parents=True, exist_ok=True)
    (theme / "index.theme").write_text(
        "[Icon Theme]\nName=Hicolor\nDirectories=48x48/apps\n\n"
        "[48x48/apps]\nSize=48\nContext=Applications\nType=Threshold\n"
    )
    # --root: install under `root`; --force-script-chrootless: run the maintainer scripts
    # here with DPKG_ROOT set (a chroot into `root` would need a whole system in it);
    # --force-depends: the fresh database has no libc6, libxcb1, ... "installed", although
    # the host has the libraries (the real Depends are checked by apt in the release workflow).
    return ["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends"]


def _user_data(home: Path) -> dict[Path, bytes]:
    """Models and settings as a user of the app has them (they must survive a purge)."""
    models = home / ".local/share/EditedID/models/CompVis--stable-diffusion-v1-4"
    data = {
        models / "model_index.json": b'{"_class_name": "StableDiffusionPipeline"}',
        home / ".config/EditedID/EditedID Desktop.conf": b"[General]\nlast_folder=/photos\n",
    }
    for path, content in data.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return data


def _install_use_purge(deb: Path, root: Path, use) -> None:
    """Install `deb` into `root`, call use(root, env), purge, check what is left."""
    dpkg = _dpkg_root(root)
    before = {p for p in root.rglob("*")}
    home = root / "home/user"
    data = _user_data(home)
    out = subprocess.run([*dpkg, "-i", str(deb)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    for path in ("opt/editedid/EditedID", "usr/bin/editedid", "usr/bin/editedid-cli"):
        assert os.access(root / path, os.X_OK), path
    cache = (root / "usr/share/mime/mime.cache").read_bytes()
    assert b"application/x-editedid-project" in cache  # postinst updated the MIME cache
    if shutil.which("gtk-update-icon-cache"):
        assert b"editedid" in (root / "usr/share/icons/hicolor/icon-theme.cache").read_bytes()
    if shutil.which("update-desktop-database"):  # "Open with EditedID" for photos
        mimeinfo = (root / "usr/share/applications/mimeinfo.cache").read_text()
        assert f"image/jpeg={build_deb.APP_ID}.desktop;" in mimeinfo
    env = dict(os.environ, HOME=str(home), QT_QPA_PLATFORM="offscreen")
    env.pop("EDITEDID_MODELS_DIR", None)
    env.pop("XDG_DATA_HOME", None)
    env.pop("XDG_CONFIG_HOME", None)
    use(root, env)
    (root / "opt/editedid/__pycache__").mkdir(exist_ok=True)  # what a run as root may leave
    (root / "opt/editedid/__pycache__/x.cpython-311.pyc").write_bytes(b"")
    out = subprocess.run([*dpkg, "--purge", "editedid"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (root / "opt/editedid").exists()
    assert (root / "opt").is_dir()  # dpkg removed it with our files; the system keeps it
    status = (root / "var/lib/dpkg/status").read_text()
    assert "Package: editedid" not in status or "Status: purge ok not-installed" in status
    left = {p for p in root.rglob("*") if p.is_file()} - before
    user = {p for p in left if home in p.parents}
    assert {p for p in data} <= user and all(p.read_bytes() == c for p, c in data.items())
    system = left - user
    # Only dpkg's own database and the caches the maintainer scripts rebuilt, which no
    # longer know EditedID.
    caches = [
        p
        for p in system
        if root / "usr/share/mime" in p.parents or p.name in ("mimeinfo.cache", "icon-theme.cache")
    ]
    stray = [p for p in system - set(caches) if root / "var/lib/dpkg" not in p.parents]
    assert not stray, stray
    for path in caches:
        assert b"editedid" not in path.read_bytes(), path
    assert not list((root / "var/lib/dpkg/info").glob("editedid.*"))


@needs_dpkg
def test_deb_installs_into_a_throwaway_root_and_purges_to_the_users_data(stand_in_deb, tmp_path):
    def use(root, env):
        for launcher, expect in (("editedid", "--self-test"), ("editedid-cli", "--cli restore")):
            args = expect.split()[-1:] if launcher == "editedid" else ["restore"]
            out = subprocess.run(
                [str(root / "usr/bin" / launcher), *args],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            assert out.stdout.strip() == f"EditedID called with: {expect}"

    _install_use_purge(stand_in_deb, tmp_path / "root", use)


@needs_dpkg
def test_depends_come_from_the_binaries_not_a_list(tmp_path):
    result = deb_depends.analyse(_stand_in_bundle(tmp_path / "a"))
    names = {d.split()[0] for d in result["depends"]}
    assert {"libc6", "libmd0", "libselinux1"} <= names  # dpkg's NEEDED, read with objdump
    assert result["needs"]["libmd.so.0"] == ["_internal/libdemo.so"]
    assert "libmd0" not in {
        d.split()[0]
        for d in deb_depends.analyse(_stand_in_bundle(tmp_path / "b", ship_libmd=True))["depends"]
    }  # shipped: no Depends
    assert build_deb.debian_version("1.2.0rc1") == "1.2.0~rc1"  # sorts before 1.2.0 in dpkg
    assert build_deb.debian_version("0.1.0") == "0.1.0"


# A bundle as a fake dependency graph: file -> NEEDED sonames (deb_depends reads them
# through `read`, so no real ELF file is needed).
GRAPH = {
    "EditedID": ["libpython3.11.so.1.0", "libc.so.6"],
    "_internal/libpython3.11.so.1.0": ["libz.so.1", "libc.so.6"],
    "_internal/PySide6/QtGui.abi3.so": ["libQt6Gui.so.6"],
    "_internal/PySide6/Qt/lib/libQt6Gui.so.6": ["libEGL.so.1", "libfontconfig.so.1"],
    "_internal/PySide6/Qt/plugins/platforms/libqxcb.so": ["libQt6XcbQpa.so.6"],
    "_internal/PySide6/Qt/lib/libQt6XcbQpa.so.6": ["libxcb-icccm.so.4", "libxcb.so.1"],
    "_internal/PySide6/Qt/plugins/platformthemes/libqgtk3.so": ["libgtk-3.so.0"],
    "_internal/PySide6/Qt/plugins/platforms/libqwayland.so": ["libwayland-client.so.0"],
}
# What PyInstaller added on a build machine with GTK installed (the old spec kept it):
# GTK needed by the optional GTK theme only, and the Wayland libraries GTK needs.
GTK_HOST = {"_internal/libgtk-3.so.0": ["libwayland-client.so.0", "libwayland-egl.so.1"]}


def _fake_bundle(root: Path, graph: dict[str, list[str]]):
    for rel in graph:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"\x7fELF fake")

    def read(path: Path):
        return graph[path.relative_to(root).as_posix()], {"2.17", "2.34"}

    return root, read


def test_depends_follow_the_bundles_own_graph_not_the_build_machine(tmp_path, monkeypatch):
    def no_host_query(*args, **kwargs):  # ldconfig, dpkg -S, shlibs: never asked
        raise AssertionError(f"deb_depends asked the build machine: {args}")

    monkeypatch.setattr(deb_depends.subprocess, "run", no_host_query)
    clean = deb_depends.analyse(*_fake_bundle(tmp_path / "clean", GRAPH))
    assert clean["depends"] == [
        "fontconfig",  # what libfontconfig loads at run time: the system font cache,
        "fontconfig-config",  # its configuration
        "fonts-dejavu-core",  # and a font
        "libc6 (>= 2.34)",
        "libegl1",
        "libfontconfig1",
        "libxcb-icccm4",  # needed by the (mandatory) xcb platform plugin's library
        "libxcb1",
        "zlib1g",
    ]
    assert clean["recommends"] == ["libgtk-3-0", "libwayland-client0"]  # optional plugins
    # The bundle a GTK build machine gave: the libraries only an optional plugin reaches
    # are optional too, so Wayland is recommended, never a hard dependency.
    gtk = deb_depends.analyse(*_fake_bundle(tmp_path / "gtk", GRAPH | GTK_HOST))
    assert gtk["depends"] == clean["depends"]
    assert gtk["recommends"] == ["libwayland-client0", "libwayland-egl1"]
    assert "_internal/libgtk-3.so.0" not in gtk["mandatory"]
    # a soname nobody reviewed stops the build instead of a guess
    odd = deb_depends.analyse(*_fake_bundle(tmp_path / "odd", GRAPH | {"x.so": ["libodd.so.9"]}))
    assert odd["unknown"] == ["libodd.so.9"]


def test_screen_text_tells_glyphs_from_empty_boxes():
    import matplotlib
    from PIL import ImageDraw, ImageFont

    font = Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"
    menu = "File  Edit  View  Run  Help"
    text = Image.new("RGB", (320, 24), (49, 54, 59))
    ImageDraw.Draw(text).text((8, 4), menu, font=ImageFont.truetype(str(font), 13), fill="white")
    verdict = screen_text.judge(np.asarray(text))
    assert verdict.readable and verdict.glyphs >= 15 and verdict.boxes == 0, verdict
    boxes = Image.new("RGB", (320, 24), (49, 54, 59))  # what Qt draws without a font
    draw, x = ImageDraw.Draw(boxes), 8
    for char in menu:
        if char != " ":
            draw.rectangle([x, 5, x + 6, 17], outline=(239, 240, 241))
        x += 9
    verdict = screen_text.judge(np.asarray(boxes))
    assert not verdict.readable and verdict.boxes == verdict.glyphs == 19, verdict
    empty = screen_text.judge(np.zeros((24, 320, 3), np.uint8))  # not drawn yet
    assert (empty.glyphs, empty.readable) == (0, False)


@pytest.mark.slow
@needs_dpkg
def test_the_bundles_deb_installs_runs_and_purges_to_the_users_data(linux_bundle_check, tmp_path):
    """The real .deb (built by the check above, not again): installed into a throwaway
    root, its self-test and a classic restore run from the installed launchers."""
    from tests.bundle_build import built_deb
    from tests.helpers import sample_photo

    deb_path = built_deb(linux_bundle_check)
    photo = Image.open(sample_photo("grace_hopper")).convert("RGB")
    pair = tmp_path / "photos"
    pair.mkdir()
    photo.save(pair / "original.jpg")
    brighter = np.clip(np.asarray(photo).astype(int) + 20, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(pair / "edited.png")

    def use(root, env):
        test = subprocess.run(
            [str(root / "usr/bin/editedid"), "--self-test"],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        assert test.returncode == 0 and "RESULT: PASS" in test.stdout, test.stdout + test.stderr
        out = pair / "restored.png"
        cli = subprocess.run(
            [
                str(root / "usr/bin/editedid-cli"),
                "restore",
                "--original",
                str(pair / "original.jpg"),
                "--edited",
                str(pair / "edited.png"),
                "--out",
                str(out),
                "--mode",
                "classic",
                "--face-backend",
                "dlib",
                "--faces",
                "all",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        assert cli.returncode == 0, cli.stdout + cli.stderr
        sidecar = json.loads(out.with_name("restored.png.json").read_text())
        assert sidecar["mode"] == "classic" and len(sidecar["faces"]) == 1
        with Image.open(out) as restored:
            assert restored.size == photo.size

    _install_use_purge(Path(deb_path), tmp_path / "root", use)

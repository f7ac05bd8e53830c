"""Fuzz tests (Hypothesis) of what a user or a client hands us (issue 11).

Whatever a --params-json file holds (random JSON with the real keys, wrong types and
values, sidecar shapes, broken encodings), reading it ends in parameters or one of our
own errors, never another exception, and the file is left byte-identical. The same for
project files (the real keys, hostile file names) through `load_project`, and for image
headers (flipped bytes, truncation, absurd declared sizes) through `read_rgb`, which
never decodes an image larger than its limits. Derandomized and bounded, so CI sees the
same examples on every run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli.commands import build_parser, params_from_args
from engine.errors import EditedIDError
from engine.params import EditedIDParams, load_params

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEYS = [f.name for f in dataclasses.fields(EditedIDParams)]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["6", "7.5", "all", "map", "both", "cond", "down", "glasses", ""]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
# Values near the real ones: in range, on the edges, and just past them.
plausible = st.one_of(
    st.integers(min_value=-2, max_value=70),
    st.sampled_from([0.0, 0.04, 0.5, 1.0, 7.5, 30.0, 512, 512.0, 2048, 2112, 2**32, 2**70]),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e30, -1e-3]),
    st.lists(st.integers(min_value=-1, max_value=8), max_size=3),
    st.lists(st.floats(min_value=-0.5, max_value=1.5), max_size=3),
    st.lists(st.sampled_from(["down", "mid", "up", "face", "hat", ""]), max_size=3),
)
params_objects = st.dictionaries(
    st.sampled_from(KEYS) | st.text(max_size=8), plausible | json_values, max_size=8
)
documents = st.one_of(
    params_objects,
    st.builds(lambda p: {"tool": "EditedID Desktop", "params": p}, params_objects | json_values),
    st.builds(lambda d: {"tool": "x", "diagnostics": d}, json_values),
    st.builds(lambda p: {"diagnostics": {"params": p}}, params_objects | json_values),
    json_values,
)


def _encoded(document, encoding: str) -> bytes:
    text = json.dumps(document)  # NaN / Infinity as Python writes them
    return text.encode(encoding, errors="replace")


file_bytes = st.one_of(
    st.builds(_encoded, documents, st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"])),
    st.binary(max_size=64),
    st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    st.builds(lambda raw, cut: raw[:cut], st.builds(_encoded, documents, st.just("utf-8")),
              st.integers(min_value=0, max_value=40)),
)  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_args():
    return build_parser().parse_args(
        ["restore-crop", "--original", "a", "--edited", "b", "--face-mask", "c"]
        + ["--element-mask", "d", "--out", "e", "--params-json", "p.json"]
    )


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "params.json"


@FUZZ
@given(content=file_bytes)
def test_params_json_ends_in_params_or_our_error_and_is_never_touched(
    fuzz_args, fuzz_file, content
):
    fuzz_file.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    fuzz_args.params_json = fuzz_file
    try:
        params = params_from_args(fuzz_args)
    except EditedIDError as error:
        assert str(error)
    else:
        assert isinstance(params, EditedIDParams)
        assert load_params(params.to_dict()) == params  # what it returns is valid
    assert hashlib.sha256(fuzz_file.read_bytes()).hexdigest() == digest


@FUZZ
@given(document=documents)
def test_load_params_ends_in_params_none_or_our_error(document):
    try:
        params = load_params(document, source="fuzz.json")
    except EditedIDError as error:
        assert "fuzz.json" in str(error)
    else:
        assert params is None or load_params(params.to_dict()) == params


# --- project files (issue 11) -------------------------------------------------------------
FACE_KEYS = ["enabled", "element_words", "overlap", "overlap_linked", "pairing"]
# The real places of a project document, by key path ("0" is a face number).
PROJECT_PATHS = [
    ("format",), ("version",), ("inputs",), ("inputs", "original"), ("inputs", "edited"),
    ("inputs", "original", "relative"), ("inputs", "original", "absolute"),
    ("inputs", "edited", "relative"), ("inputs", "edited", "absolute"),
    ("params",), *(("params", k) for k in KEYS), ("faces",), ("faces", "0"), ("faces", "x"),
    *(("faces", "0", k) for k in FACE_KEYS), ("masks",), ("masks", "0"), ("masks", "-1"),
    ("masks", "0", "face"), ("masks", "0", "element"), ("masks", "0", "face", "file"),
    ("masks", "0", "element", "file"),
]  # fmt: skip
# File names as a hostile project would give them: outside the folder, odd, too long.
path_names = st.one_of(
    st.sampled_from([
        "../o.png", "/etc/passwd", "a\x00b.png", "x" * 300 + ".png", "x" * 5000, "loop",
        "loop/x.png", "", ".", "..", "photos", "photos/o.png", "job.editedid-masks/m.png",
        "job.editedid", "photos/not-an-image.png", "~/o.png", "C:\\o.png",
    ]),
    st.text(max_size=12),
)  # fmt: skip
project_values = st.one_of(
    plausible,
    json_values,
    path_names,
    st.builds(lambda name: {"relative": name}, path_names),
    st.builds(lambda name: {"absolute": name}, path_names),
    st.builds(lambda name: {"file": name}, path_names),
    st.sampled_from(["editedid-project", "auto", 0, 1, 2, -1, True, 10**30, 1.5]),
)


def _edit(keys: tuple[str, ...]):
    """(keys, value): where a path is stored, mostly hostile names; elsewhere anything."""
    if keys[-1] in ("file", "relative", "absolute"):
        return st.tuples(st.just(keys), path_names | project_values)
    return st.tuples(st.just(keys), project_values)


project_edits = st.lists(st.sampled_from(PROJECT_PATHS).flatmap(_edit), min_size=1, max_size=5)


def _set(document: dict, keys: tuple[str, ...], value) -> None:
    node = document
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value


def _tree_digest(root) -> dict[str, str]:
    """sha256 of every regular file under root (links not followed)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture(scope="module")
def project_folder(tmp_path_factory):
    """A real project (photos, masks) and a valid document to break, in a folder with a
    symbolic link loop and a file that is not an image."""
    import numpy as np
    from PIL import Image

    from editedid_desktop.model.project import ProjectData, save_project
    from editedid_desktop.model.session import FaceSettings

    root = tmp_path_factory.mktemp("project-fuzz")
    (root / "photos").mkdir()
    for name in ("o.png", "e.png"):
        Image.new("RGB", (30, 40), (90, 80, 70)).save(root / "photos" / name)
    (root / "photos" / "not-an-image.png").write_bytes(b"%!PS-Adobe-3.0\n")
    (root / "loop").symlink_to(root / "loop")
    mask = np.zeros((40, 30), np.uint8)
    mask[5:20, 5:25] = 255
    data = ProjectData(
        original_path=root / "photos" / "o.png",
        edited_path=root / "photos" / "e.png",
        face_settings={0: FaceSettings(element_words="hat")},
        masks={0: (mask, None)},
    )
    path = save_project(root / "job.editedid", data)
    return root, json.loads(path.read_text())


@FUZZ
@given(edits=project_edits, encoding=st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]))
def test_project_file_ends_in_a_project_or_our_error_and_nothing_is_touched(
    project_folder, edits, encoding
):
    from editedid_desktop.model.project import ProjectData, load_project

    root, valid = project_folder
    document = json.loads(json.dumps(valid))
    for keys, value in edits:
        _set(document, keys, value)
    path = root / "fuzz.editedid"
    path.write_bytes(_encoded(document, encoding))
    before = _tree_digest(root)
    try:
        data = load_project(path)
    except EditedIDError as error:
        assert str(path) in str(error)
    else:
        assert isinstance(data, ProjectData)
        for pair in data.masks.values():  # only files inside the project's folder were read
            assert all(m is None or m.shape == (40, 30) for m in pair)
    assert _tree_digest(root) == before


# --- image headers (issue 11) --------------------------------------------------------------
def _samples() -> dict[str, bytes]:
    """Small valid images of every decoder we support, in a few modes each."""
    import io

    import numpy as np
    from PIL import Image

    rgb = (np.random.default_rng(0).random((16, 24, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6
    variants = {
        "png": (image, "PNG", {}),
        "png-rgba": (image.convert("RGBA"), "PNG", {}),
        "png-palette": (image.convert("P"), "PNG", {"transparency": 0}),
        "png-16bit": (Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257), "PNG", {}),
        "jpeg": (image, "JPEG", {"exif": exif.tobytes()}),
        "jpeg-progressive": (image, "JPEG", {"progressive": True}),
        "jpeg-cmyk": (image.convert("CMYK"), "JPEG", {}),
        "tiff": (image, "TIFF", {}),
        "tiff-deflate": (image, "TIFF", {"compression": "tiff_deflate"}),
        "webp": (image, "WEBP", {}),
        "webp-lossless": (image, "WEBP", {"lossless": True}),
        "webp-exif": (image, "WEBP", {"exif": exif.tobytes()}),  # a VP8X header
        "bmp": (image, "BMP", {}),
        "bmp-grey": (image.convert("L"), "BMP", {}),
    }
    samples = {}
    for name, (picture, fmt, options) in variants.items():
        buffer = io.BytesIO()
        picture.save(buffer, format=fmt, **options)
        samples[name] = buffer.getvalue()
    return samples


SAMPLES = _samples()
ABSURD = [0, 1, 2, 51, 16383, 19000, 65535, 100_000, 2**24 - 1, 2**31 - 1, 2**32 - 1]


def _declare_size(data: bytes, width: int, height: int) -> bytes:
    """`data` with its header declaring width x height (as far as the field holds)."""
    import struct
    import zlib

    out = bytearray(data)
    if data.startswith(b"\x89PNG"):  # IHDR, with its CRC made right again
        out[16:24] = struct.pack(">II", width % 2**32, height % 2**32)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    elif data.startswith(b"\xff\xd8"):  # the first SOFn segment
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            at = data.find(marker)
            if at > 0:
                out[at + 5 : at + 9] = struct.pack(">HH", height % 2**16, width % 2**16)
                break
    elif data.startswith(b"BM"):
        out[18:26] = struct.pack("<ii", width % 2**31, height % 2**31)
    elif data[:4] in (b"II*\x00", b"MM\x00*"):  # ImageWidth / ImageLength of IFD0
        order = "<" if data[:2] == b"II" else ">"
        (ifd,) = struct.unpack(order + "I", data[4:8])
        (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            (tag,) = struct.unpack(order + "H", data[entry : entry + 2])
            if tag in (256, 257):
                value = width if tag == 256 else height
                out[entry + 2 : entry + 12] = struct.pack(order + "HII", 4, 1, value % 2**32)
    elif data[8:16] == b"WEBPVP8 ":
        out[26:30] = struct.pack("<HH", width % 2**14, height % 2**14)
    elif data[8:16] == b"WEBPVP8L":
        bits = ((width - 1) % 2**14) | (((height - 1) % 2**14) << 14) | (data[24] & 0xF0) << 24
        out[21:25] = struct.pack("<I", bits)
    elif data[8:16] == b"WEBPVP8X":
        out[24:30] = ((width - 1) % 2**24).to_bytes(3, "little") + ((height - 1) % 2**24).to_bytes(
            3, "little"
        )
    return bytes(out)


def _mutate(name: str, size, flips, cut, prefix) -> bytes:
    data = SAMPLES[name]
    if size is not None:
        data = _declare_size(data, *size)
    data = bytearray(data)
    for index, value in flips:
        if index < len(data):
            data[index] = value
    if cut is not None:
        data = data[:cut]
    return bytes(prefix + data) if prefix else bytes(data)


names = st.sampled_from(sorted(SAMPLES))
sizes = st.tuples(st.sampled_from(ABSURD), st.sampled_from(ABSURD))
flips = st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), min_size=1, max_size=4)
cuts = st.integers(min_value=0, max_value=1300)
image_bytes = st.one_of(
    st.builds(_mutate, names, sizes, st.just([]), st.none(), st.just(b"")),  # absurd sizes
    st.builds(_mutate, names, sizes, st.just([]), cuts, st.just(b"")),  # ... and truncated
    st.builds(_mutate, names, st.none(), flips, st.none(), st.just(b"")),  # header bytes
    st.builds(_mutate, names, st.none(), st.just([]), cuts, st.just(b"")),  # truncated
    st.builds(  # all at once, behind a few stray bytes
        _mutate, names, st.none() | sizes, flips, st.none() | cuts, st.binary(max_size=8)
    ),
    st.binary(max_size=64),  # no image at all
)


@pytest.fixture(scope="module")
def guarded_decoders():
    """Every decoder's load() first checks the size the image declares: a huge image is
    never decoded (read_rgb must refuse it from the header)."""
    from PIL import (
        BmpImagePlugin,
        ImageFile,
        JpegImagePlugin,
        MpoImagePlugin,
        PngImagePlugin,
        TiffImagePlugin,
        WebPImagePlugin,
    )

    from engine.io.images import MAX_ASPECT_RATIO, MAX_IMAGE_PIXELS

    classes = {ImageFile.ImageFile}
    for module in (BmpImagePlugin, JpegImagePlugin, MpoImagePlugin, PngImagePlugin,
                   TiffImagePlugin, WebPImagePlugin):  # fmt: skip
        classes |= {c for c in vars(module).values() if isinstance(c, type)
                    and issubclass(c, ImageFile.ImageFile) and "load" in vars(c)}  # fmt: skip
    decoded: list[tuple[int, int]] = []

    def guard(load):
        def checked(self, *args, **kwargs):
            width, height = self.size
            assert 0 < width * height <= MAX_IMAGE_PIXELS, f"decoding {width}x{height}"
            assert max(width, height) <= MAX_ASPECT_RATIO * min(width, height), self.size
            decoded.append(self.size)
            return load(self, *args, **kwargs)

        return checked

    with pytest.MonkeyPatch.context() as patch:
        for cls in classes:
            patch.setattr(cls, "load", guard(vars(cls)["load"]))
        yield decoded


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow on the corrupt EXIF we made
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # we refuse those
@FUZZ
@given(content=image_bytes, suffix=st.sampled_from([".png", ".jpg", ".tif", ".webp", ".bmp"]))
def test_image_header_ends_in_pixels_or_our_error_and_is_never_touched(
    tmp_path_factory, guarded_decoders, content, suffix
):

    from engine.io.images import MAX_IMAGE_PIXELS, read_rgb

    path = tmp_path_factory.getbasetemp() / f"fuzz-image{suffix}"
    path.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    try:  # (a huge decode is caught by guarded_decoders, not by a clock)
        array = read_rgb(path)
    except EditedIDError as error:
        assert str(path) in str(error)
    else:
        assert array.ndim == 3 and array.shape[2] == 3 and array.dtype.name == "uint8"
        assert 0 < array.shape[0] * array.shape[1] <= MAX_IMAGE_PIXELS
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_the_image_samples_are_valid_and_sizes_can_be_declared(tmp_path, guarded_decoders):
    """The fuzz starts from readable images, its guard sees every decode, and
    `_declare_size` reaches every header."""
    from engine.io.images import open_image, read_rgb

    for name, data in SAMPLES.items():
        path = tmp_path / f"{name}.img"
        path.write_bytes(data)
        decoded = len(guarded_decoders)
        assert read_rgb(path).shape[:2] in ((16, 24), (24, 16)), name
        assert len(guarded_decoders) > decoded, name
        changed = _declare_size(data, 30, 20)
        assert changed != data, name
        if name == "webp-exif":  # libwebp refuses a canvas unlike its frame at open
            assert changed[24:30] == bytes([29, 0, 0, 19, 0, 0])
            continue
        path.write_bytes(changed)
        with open_image(path) as image:
            assert image.size == (30, 20), name


# --- second wave (issue 23): ambiguity, counts, names ------------------------------------
def _dumps_with_twice(node, path: tuple[str, ...], second) -> str:
    """JSON text of `node` where the key at `path` appears twice (its own value, then
    `second`): what json.dumps cannot write."""
    if not isinstance(node, dict):
        return json.dumps(node)
    items = []
    for key, value in node.items():
        inner = path[1:] if path and key == path[0] else ()
        items.append(f"{json.dumps(key)}: {_dumps_with_twice(value, inner, second)}")
        if len(path) == 1 and key == path[0]:
            items.append(f"{json.dumps(key)}: {json.dumps(second)}")
    return "{" + ", ".join(items) + "}"


def _key_paths(node, prefix=()) -> list[tuple[str, ...]]:
    paths = []
    if isinstance(node, dict):
        for key, value in node.items():
            paths.append((*prefix, key))
            paths.extend(_key_paths(value, (*prefix, key)))
    return paths


@FUZZ
@given(data=st.data(), second=scalars)
def test_a_project_with_any_key_twice_is_refused_naming_the_key(project_folder, data, second):
    from editedid_desktop.model.project import load_project

    root, valid = project_folder
    path_to_key = data.draw(st.sampled_from(_key_paths(valid)))
    path = root / "twice.editedid"
    path.write_text(_dumps_with_twice(valid, path_to_key, second), encoding="utf-8")
    with pytest.raises(EditedIDError) as caught:
        load_project(path)
    assert str(path) in str(caught.value)
    assert f"the key {path_to_key[-1]!r} appears twice" in str(caught.value)


@settings(FUZZ, max_examples=4)
@given(count=st.integers(min_value=200_001, max_value=260_000), where=st.sampled_from(
    ["faces", "masks"]))  # fmt: skip
def test_a_project_with_huge_counts_is_refused_before_it_is_used(project_folder, count, where):
    from editedid_desktop.model.project import PROJECT_MAX_ITEMS, load_project

    root, valid = project_folder
    document = json.loads(json.dumps(valid))
    if where == "faces":
        document["faces"] = {str(i): {"enabled": True} for i in range(count)}
    else:
        document["masks"] = {str(i): {} for i in range(count)}
    path = root / "huge.editedid"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(EditedIDError, match=f"more than {PROJECT_MAX_ITEMS:,} entries") as e:
        load_project(path)
    assert str(path) in str(e.value)


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from(
        ["\x1b", "\x07", "\n", "\r", "\t", "\x7f", "\x9b", "\u202e", "\u2066",
         "\u2028", "|", "\\", "`", "\udc80", "\udcff"]),
    max_size=40,
)  # fmt: skip


BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@FUZZ
@given(name=names)
def test_every_control_character_of_a_name_is_escaped_in_what_we_print(name):
    import unicodedata

    from engine.io.names import escape_controls, md_cell

    shown = escape_controls(name)
    for char in shown:
        category = unicodedata.category(char)
        assert category not in ("Cc", "Cs", "Zl", "Zp"), (name, shown)
        assert (
            char not in "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
        )
    shown.encode("utf-8")  # printable on a UTF-8 terminal: no lone surrogate left
    cell = md_cell(name)
    assert "\n" not in cell and "|" not in cell.replace("\\|", "")
    if not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp", "Cf") for c in name):
        assert escape_controls(name) == name  # an ordinary name is shown as it is


accented = st.text(  # names of letters and digits (the separators are the name rule's)
    alphabet=st.sampled_from(list("aeiouncAEIOUNC1") + ["é", "ñ", "ü", "Å", "ç", "ő", "ḗ"]),
    min_size=1,
    max_size=20,
)


@FUZZ
@given(stem=accented, edited_form=st.sampled_from(["NFC", "NFD"]),
       original_form=st.sampled_from(["NFC", "NFD"]))  # fmt: skip
def test_names_pair_whatever_their_unicode_normal_form(stem, edited_form, original_form):
    import unicodedata
    from pathlib import Path

    from engine.io.folders import pair_by_name

    original = Path("o") / (unicodedata.normalize(original_form, stem) + ".png")
    edited = Path("e") / (unicodedata.normalize(edited_form, stem + "_edited") + ".png")
    pairing = pair_by_name([original], [edited])
    assert pairing.pairs == [(original, edited)]

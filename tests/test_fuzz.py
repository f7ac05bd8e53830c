"""Fuzz tests (Hypothesis) of the parameters loader the CLI uses (issue 11).

Whatever a --params-json file holds (random JSON with the real keys, wrong types and
values, sidecar shapes, broken encodings), reading it ends in parameters or one of our
own errors, never another exception, and the file is left byte-identical. Derandomized
and bounded, so CI sees the same examples on every run.
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

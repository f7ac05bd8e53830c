"""The .editedid project file: round trip of paths, params, face settings and masks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from editedid_desktop.model.project import (
    ProjectData,
    from_json,
    load_project,
    masks_folder,
    save_project,
    to_json,
)
from editedid_desktop.model.session import FaceSettings, Session
from engine.errors import InputError
from engine.params import EditedIDParams


def _data(tmp_path):
    (tmp_path / "photos").mkdir()
    original = tmp_path / "photos" / "o.png"
    edited = tmp_path / "photos" / "e.png"
    original.write_bytes(b"x")
    edited.write_bytes(b"y")
    face = np.zeros((40, 30), np.uint8)
    face[5:20, 5:25] = 255
    element = np.full((40, 30), 7, np.uint8)
    return ProjectData(
        original_path=original,
        edited_path=edited,
        params=EditedIDParams(steps=8, dpm_range=(5, 8), element_words=("hat",), seed=3),
        face_settings={
            0: FaceSettings(enabled=False, element_words="hat, scarf", overlap=(0.3, 0.7)),
            2: FaceSettings(overlap_linked=False, pairing=None),
            3: FaceSettings(pairing=1),
        },
        masks={0: (face, None), 2: (None, element)},
    )


def test_round_trip(tmp_path):
    data = _data(tmp_path)
    path = save_project(tmp_path / "job", data)
    assert path.name == "job.editedid"
    loaded = load_project(path)
    assert loaded.original_path == data.original_path.resolve()
    assert loaded.edited_path == data.edited_path.resolve()
    assert loaded.params == data.params
    assert loaded.face_settings == data.face_settings
    assert set(loaded.masks) == {0, 2}
    np.testing.assert_array_equal(loaded.masks[0][0], data.masks[0][0])
    assert loaded.masks[0][1] is None and loaded.masks[2][0] is None
    np.testing.assert_array_equal(loaded.masks[2][1], data.masks[2][1])
    document = json.loads(path.read_text())
    assert document["version"] == 1
    assert document["inputs"]["edited"]["relative"] == "photos/e.png"
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*"))


def test_relative_paths_survive_moving_the_folder(tmp_path):
    data = _data(tmp_path)
    save_project(tmp_path / "job.editedid", data)
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    tmp_path.rename(moved)
    loaded = load_project(moved / "job.editedid")
    assert loaded.edited_path == (moved / "photos" / "e.png").resolve()
    assert loaded.masks[0][0] is not None


def test_resave_removes_stale_masks(tmp_path):
    data = _data(tmp_path)
    path = save_project(tmp_path / "job.editedid", data)
    data.masks = {}
    save_project(path, data)
    assert not list(masks_folder(path).glob("*.png"))
    assert load_project(path).masks == {}


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.editedid"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.editedid"):
        load_project(bad)
    with pytest.raises(InputError, match="not found"):
        load_project(tmp_path / "missing.editedid")
    data = _data(tmp_path)
    path = save_project(tmp_path / "job.editedid", data)
    (masks_folder(path) / "face0-face.png").unlink()
    with pytest.raises(InputError, match="missing"):
        load_project(path)


def test_never_overwrites_an_input(tmp_path):
    data = _data(tmp_path)
    target = tmp_path / "photos" / "x.editedid"
    data.edited_path = target
    with pytest.raises(InputError, match="input"):
        save_project(target, data)


def test_generic_codec_follows_the_type_hints(tmp_path):
    """No field lists: any dataclass value goes through to_json/from_json unchanged."""
    params = EditedIDParams(overlap=(0.2, 0.8), max_batch_faces=3, gate_blocks=("up",))
    assert from_json(to_json(params, tmp_path), EditedIDParams, tmp_path) == params
    faces = {1: FaceSettings(pairing=None), 4: FaceSettings(pairing=2, overlap=(1, 0))}
    hint = dict[int, FaceSettings]
    assert from_json(json.loads(json.dumps(to_json(faces, tmp_path))), hint, tmp_path) == faces
    with pytest.raises(ValueError, match="Unknown FaceSettings field"):
        from_json({"colour": "red"}, FaceSettings, tmp_path)


def test_snapshot_of_a_session_is_its_persisted_properties(tmp_path):
    session = Session()
    session.params = EditedIDParams(seed=9)
    session.update_face(2, element_words="hat")
    data = ProjectData.of(session, {})
    assert data.params.seed == 9 and data.face_settings[2].element_words == "hat"
    path = save_project(tmp_path / "s", data)
    document = json.loads(path.read_text())
    assert document["faces"]["2"]["element_words"] == "hat"
    assert document["inputs"] == {"edited": None, "original": None}


def _saved(tmp_path):
    path = save_project(tmp_path / "job.editedid", _data(tmp_path))
    return path, json.loads(path.read_text())


def test_mask_paths_are_confined_to_the_project_folder(tmp_path):
    """A project naming a mask by an absolute path or '../' would load another client's
    photo as a mask (and copy it into this project on re-save): refused."""
    path, document = _saved(tmp_path)
    secret = tmp_path.parent / "other-client.png"
    np_mask = np.full((40, 30), 255, np.uint8)
    from PIL import Image

    Image.fromarray(np_mask).save(secret)
    before = secret.read_bytes()
    for name in (str(secret), "../" + secret.name, "masks/../../" + secret.name):
        document["masks"]["0"]["face"]["file"] = name
        path.write_text(json.dumps(document))
        with pytest.raises(InputError, match="outside the project's folder"):
            load_project(path)
    assert secret.read_bytes() == before


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(version="1"), "not a version number"),
        (lambda d: d.update(masks=[1, 2]), "'masks' must be an object"),
        (lambda d: d["masks"].update({"0": "face.png"}), "masks of face"),
        (lambda d: d["masks"]["0"].update(face={"file": 7}), "names no file"),
        (lambda d: d["params"].update(guidance=float("nan")), "holds NaN, which is not a number"),
        (lambda d: d["params"].update(element_words="hat"), None),  # one word, not 'h','a','t'
        (lambda d: d["params"].update(steps="6"), "steps"),
    ],
)
def test_malformed_project_files_are_refused_naming_the_file(tmp_path, change, message):
    path, document = _saved(tmp_path)
    change(document)
    path.write_text(json.dumps(document))
    if message is None:
        assert load_project(path).params.element_words == ("hat",)
        return
    with pytest.raises(InputError, match=message) as error:
        load_project(path)
    assert str(path) in str(error.value) or path.name in str(error.value)


def test_deeply_nested_project_file_is_refused(tmp_path):
    path = tmp_path / "deep.editedid"
    path.write_text('{"format": "editedid-project", "x": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(InputError, match="deep.editedid"):
        load_project(path)


# -- project files as hostile input, second wave (issue 23): engine.io.untrusted ------------
def test_a_fifo_named_like_a_project_is_refused_at_once(tmp_path):
    """Opened blocking, a FIFO with no writer waits for ever (the CLI and the app's
    command line hung); the test would hang without the non-blocking open."""
    import os

    fifo = tmp_path / "x.editedid"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="x.editedid: not a regular file"):
        load_project(fifo)


def test_a_link_to_a_device_is_refused_without_reading_it(tmp_path):
    link = tmp_path / "zero.editedid"
    link.symlink_to("/dev/zero")
    with pytest.raises(InputError, match="zero.editedid: not a regular file"):
        load_project(link)


def test_a_huge_project_file_is_refused_before_parsing(tmp_path):
    from editedid_desktop.model.project import PROJECT_MAX_BYTES

    path, document = _saved(tmp_path)
    document["padding"] = "x" * (PROJECT_MAX_BYTES + 1)
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match="far too large for a project file"):
        load_project(path)


def test_a_million_face_entries_are_refused(tmp_path):
    path, document = _saved(tmp_path)
    document["faces"] = {str(i): {"enabled": True} for i in range(300_000)}
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match="more than 200,000 entries"):
        load_project(path)


def test_a_key_given_twice_is_ambiguous_and_refused(tmp_path):
    path, document = _saved(tmp_path)
    text = json.dumps(document)
    edited = json.dumps(document["inputs"]["edited"])
    # a second "edited" in the same object, naming another file
    text = text.replace('"edited": ' + edited, '"edited": ' + edited + ', "edited": "other.png"')
    assert text.count('"edited":') == 2
    path.write_text(text)
    with pytest.raises(InputError, match="the key 'edited' appears twice"):
        load_project(path)


def test_masks_of_one_face_under_two_names_are_refused(tmp_path):
    path, document = _saved(tmp_path)
    document["masks"]["00"] = document["masks"]["0"]
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match="face 0 has masks under two names"):
        load_project(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_face_overlap_that_is_not_a_number_is_refused_on_load(tmp_path, value):
    """The face panel turned a NaN overlap into a slider position inside a Qt slot
    (ValueError, no message): refused with the file's name when the project loads."""
    path, document = _saved(tmp_path)
    faces = document["faces"]
    face = next(iter(faces.values()))
    face["overlap"] = [value, 0.5]
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match="job.editedid: holds .*, which is not a number"):
        load_project(path)


def test_a_save_removes_the_temp_files_of_a_save_killed_before(tmp_path):
    """kill -9 during a save leaves `.job.editedid.<host>-<pid>.<random>.editedid.part`
    files (the project's and its masks'); the next save there removes them, but never the
    temp file of a write still running (this process's)."""
    import os
    import subprocess
    import sys

    from editedid_desktop.model.project import masks_folder
    from engine.io.files import host_tag

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    data = _data(tmp_path)
    path = save_project(tmp_path / "job", data)
    killed = [
        tmp_path / f".job.editedid.{host_tag()}-{dead}.k1ll3d00.editedid.part",
        masks_folder(path) / f".face-0.png.{host_tag()}-{dead}.k1ll3d01.editedid.part",
    ]
    running = tmp_path / f".job.editedid.{host_tag()}-{os.getpid()}.runn1ng0.editedid.part"
    for temp in [*killed, running]:
        temp.write_bytes(b"half a file")
    save_project(path, data)
    assert [p.exists() for p in killed] == [False, False]
    assert running.read_bytes() == b"half a file"

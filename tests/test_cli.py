"""editedid-cli restore-crop end to end on the tiny model, and its error paths."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from engine.cli.commands import (
    EXIT_CANCELLED,
    EXIT_INPUT,
    EXIT_MODEL,
    EXIT_OK,
    build_parser,
    main,
    params_from_args,
)
from engine.errors import InputError
from engine.params import EditedIDParams
from tests.helpers import face_and_element_masks, face_crop


@pytest.fixture()
def crop_files(tmp_path):
    face, element = face_and_element_masks(32)
    files = {
        "original": (tmp_path / "o.png", face_crop("grace_hopper", 32)),
        "edited": (tmp_path / "e.png", face_crop("astronaut", 32)),
        "face-mask": (tmp_path / "f.png", face),
        "element-mask": (tmp_path / "m.png", element),
    }
    for path, array in files.values():
        Image.fromarray(array).save(path)
    return {k: v[0] for k, v in files.items()}


def _args(files, out, *extra):
    args = []
    for key, path in files.items():
        args += [f"--{key}", str(path)]
    return ["restore-crop", *args, "--out", str(out), "--quiet", *extra]


def _digest(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_restore_crop_writes_result_and_sidecar(tmp_path, crop_files, tiny_sd_dir):
    before = _digest(crop_files.values())
    out = tmp_path / "result.png"
    code = main(
        _args(
            crop_files,
            out,
            "--model",
            str(tiny_sd_dir),
            "--element",
            "glasses",
            "--nulltext-iters",
            "1",
            "--overlap",
            "0.6",
            "0.4",
        )
    )
    assert code == EXIT_OK
    assert np.asarray(Image.open(out)).shape == (32, 32, 3)
    sidecar = json.loads((tmp_path / "result.png.json").read_text())
    assert sidecar["diagnostics"]["params"]["overlap"] == [0.6, 0.4]
    assert sidecar["diagnostics"]["params"]["nulltext_iters"] == 1
    assert sidecar["diagnostics"]["model"]["fingerprint"]
    assert sidecar["inputs"]["original"]["sha256"] == before[crop_files["original"]]
    assert _digest(crop_files.values()) == before  # inputs untouched
    assert not list(tmp_path.glob("*.part"))  # atomic writes leave no temp files


def test_every_parameter_is_an_option_with_the_papers_default():
    args = build_parser().parse_args(
        [
            "restore-crop",
            "--original",
            "a",
            "--edited",
            "b",
            "--face-mask",
            "c",
            "--element-mask",
            "d",
            "--out",
            "e",
        ]
    )
    assert params_from_args(args) == EditedIDParams()
    args = build_parser().parse_args(
        [
            "restore-crop",
            "--original",
            "a",
            "--edited",
            "b",
            "--face-mask",
            "c",
            "--element-mask",
            "d",
            "--out",
            "e",
            "--steps",
            "8",
            "--dpm-range",
            "6",
            "8",
            "--no-blend",
            "--gate-blocks",
            "down",
            "up",
            "--element",
            "hat",
            "--element",
            "scarf",
        ]
    )
    params = params_from_args(args)
    assert (params.steps, params.dpm_range, params.blend) == (8, (6, 8), False)
    assert params.gate_blocks == ("down", "up") and params.element_words == ("hat", "scarf")


def test_bad_inputs_exit_with_a_message_naming_the_file(tmp_path, crop_files, tiny_sd_dir, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    files = dict(crop_files, original=broken)
    assert main(_args(files, tmp_path / "r.png", "--model", str(tiny_sd_dir))) == EXIT_INPUT
    assert "broken.png: not a readable image" in capsys.readouterr().err

    files = dict(crop_files)
    assert main(_args(files, crop_files["edited"], "--model", str(tiny_sd_dir))) == EXIT_INPUT
    assert "would overwrite the edited input" in capsys.readouterr().err

    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()
    assert main(_args(crop_files, tmp_path / "r.png", "--model", str(not_a_model))) == EXIT_MODEL
    assert "model_index.json" in capsys.readouterr().err

    assert (
        main(
            _args(
                crop_files,
                tmp_path / "r.png",
                "--model",
                str(tiny_sd_dir),
                "--dpm-range",
                "0",
                "20",
            )
        )
        == EXIT_INPUT
    )
    assert "dpm_range" in capsys.readouterr().err


def test_restore_whole_photo_in_classic_mode(tmp_path, capsys):
    from tests.helpers import sample_photo

    photo = Image.open(sample_photo("grace_hopper")).convert("RGB")
    original, edited = tmp_path / "o.jpg", tmp_path / "e.png"
    photo.save(original)
    Image.fromarray(np.clip(np.asarray(photo).astype(int) + 20, 0, 255).astype(np.uint8)).save(
        edited
    )
    out = tmp_path / "r.png"
    code = main(
        [
            "restore",
            "--original",
            str(original),
            "--edited",
            str(edited),
            "--out",
            str(out),
            "--mode",
            "classic",
            "--face-backend",
            "dlib",
            "--faces",
            "all",  # a brightness edit keeps the identity: restored only when asked to
        ]
    )
    assert code == EXIT_OK, capsys.readouterr().err
    sidecar = json.loads((tmp_path / "r.png.json").read_text())
    assert sidecar["mode"] == "classic" and sidecar["face_backend"] == "dlib"
    assert len(sidecar["faces"]) == 1 and sidecar["faces"][0]["original_index"] == 0
    assert "identity (dlib) before" in capsys.readouterr().err

    assert (
        main(
            [
                "restore",
                "--original",
                str(original),
                "--edited",
                str(edited),
                "--out",
                str(tmp_path / "x.png"),
                "--mode",
                "classic",
                "--faces",
                "3",
            ]
        )
        == EXIT_INPUT
    )
    assert "There is no face 3" in capsys.readouterr().err


def test_eval_and_restore_map_errors_to_the_same_exit_codes(monkeypatch, tmp_path, capsys):
    """One error mapping for every command (eval's own copy once let Ctrl+C escape)."""
    from engine.cli import eval as eval_cli
    from engine.errors import InputError, ModelError

    for error, code in (
        (KeyboardInterrupt(), EXIT_CANCELLED),
        (InputError("bad"), EXIT_INPUT),
        (ModelError("no model"), EXIT_MODEL),
    ):

        def fail(args, error=error):
            raise error

        monkeypatch.setattr(eval_cli, "cmd_eval", fail)
        assert eval_cli.main([str(tmp_path), "--out", str(tmp_path / "o")]) == code
        assert main(["eval", str(tmp_path), "--out", str(tmp_path / "o")]) == code


# --- --params-json: every shape a careless or hostile file may take (issue 11) ---------
def _params_args(path, *extra):
    argv = ["restore-crop", "--original", "a", "--edited", "b", "--face-mask", "c"]
    argv += ["--element-mask", "d", "--out", "e", "--params-json", str(path), *extra]
    return build_parser().parse_args(argv)


PARAMS_JSON_BAD = [
    ("list", b"[1, 2, 3]", "JSON object"),
    ("string_number", b'{"steps": "6"}', "steps"),
    ("guidance_nan", b'{"guidance": NaN}', "guidance"),
    ("guidance_huge", b'{"guidance": 1e30}', "guidance"),
    ("guidance_inf_literal", b'{"guidance": 1e400}', "guidance"),
    ("nulltext_lr_negative", b'{"nulltext_lr": -0.1}', "nulltext_lr"),
    ("seed_huge", b'{"seed": 1180591620717411303424}', "seed"),
    ("resolution_huge", b'{"resolution": 32768}', "resolution"),
    ("resolution_fraction", b'{"resolution": 512.5}', "resolution"),
    ("all_faces", b'{"max_batch_faces": "all"}', "max_batch_faces"),
    ("unknown_key", b'{"colour": "red"}', "colour"),
    ("latin1", '{"base_prompt": "a photo of Zoë"}'.encode("latin-1"), "UTF-8"),
    ("deep", b"[" * 100_000 + b"]" * 100_000, "nested"),
    ("digits", b'{"seed": ' + b"9" * 5000 + b"}", "seed"),
    ("broken", b'{"steps": 6', "not valid JSON"),
    ("diagnostics_text", b'{"tool": "x", "diagnostics": "none"}', "diagnostics"),
    ("diagnostics_list", b'{"tool": "x", "diagnostics": [1]}', "diagnostics"),
    ("diagnostics_params", b'{"diagnostics": {"params": [6]}}', "diagnostics.params"),
    ("sidecar_params_list", b'{"tool": "x", "params": [6]}', '"params"'),
    ("sidecar_bad_value", b'{"tool": "x", "params": {"guidance": -1}}', "guidance"),
]


@pytest.mark.parametrize(
    ("content", "field"),
    [case[1:] for case in PARAMS_JSON_BAD],
    ids=[case[0] for case in PARAMS_JSON_BAD],
)
def test_params_json_shapes_exit_2_naming_the_file_and_field(tmp_path, content, field, capsys):
    path = tmp_path / "params.json"
    path.write_bytes(content)
    before = path.read_bytes()
    code = main(["restore-crop", "--original", "a", "--edited", "b", "--face-mask", "c",
                 "--element-mask", "d", "--out", str(tmp_path / "r.png"),
                 "--model", str(tmp_path / "no-model"), "--params-json", str(path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_INPUT, err
    assert "Traceback" not in err and str(path) in err and field in err, err
    assert path.read_bytes() == before


def test_params_json_reads_bare_objects_sidecars_and_whole_floats(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"resolution": 512.0, "steps": 8, "dpm_range": [6, 8]}')
    params = params_from_args(_params_args(path))
    assert params == EditedIDParams(steps=8, dpm_range=(6, 8)) and type(params.resolution) is int
    sidecar = {"tool": "EditedID Desktop", "mode": "diffusion", "faces": [],
               "params": EditedIDParams(seed=4).to_dict()}  # fmt: skip
    path.write_text(json.dumps(sidecar))
    assert params_from_args(_params_args(path)) == EditedIDParams(seed=4)
    crop_sidecar = {"tool": "editedid-cli restore-crop", "diagnostics": sidecar}
    path.write_text(json.dumps(crop_sidecar))
    assert params_from_args(_params_args(path, "--seed", "5")) == EditedIDParams(seed=5)


def test_params_json_from_a_classic_sidecar_uses_the_defaults_and_says_so(tmp_path, capsys):
    path = tmp_path / "classic.png.json"
    path.write_text(json.dumps({"tool": "EditedID Desktop", "mode": "classic", "params": None}))
    assert params_from_args(_params_args(path, "--steps", "8", "--dpm-range", "6", "8")) == (
        EditedIDParams(steps=8, dpm_range=(6, 8))
    )
    err = capsys.readouterr().err
    assert "classic.png.json" in err and "defaults" in err


def test_params_json_and_options_are_checked_together_naming_each_origin(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"steps": 3}')  # invalid alone (dpm_range 4..6), fixed by the option
    assert params_from_args(_params_args(path, "--dpm-range", "1", "3")).steps == 3
    path.write_text('{"guidance": 1e30}')
    with pytest.raises(InputError) as caught:
        params_from_args(_params_args(path, "--seed", "-1"))
    message = str(caught.value)
    assert "p.json: guidance" in message and "--seed: seed" in message


@pytest.mark.parametrize(
    "option",
    [["--guidance", "nan"], ["--guidance", "inf"], ["--nulltext-lr", "-1"],
     ["--seed", str(2**70)], ["--resolution", "32768"], ["--init-mix", "nan"]],
)  # fmt: skip
def test_bad_numbers_on_the_command_line_exit_2_naming_the_option(tmp_path, option, capsys):
    code = main(["restore-crop", "--original", "a", "--edited", "b", "--face-mask", "c",
                 "--element-mask", "d", "--out", str(tmp_path / "r.png"),
                 "--model", str(tmp_path / "no-model"), *option])  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_INPUT and option[0] in err and "Traceback" not in err, err


def test_params_json_that_is_not_a_regular_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        params_from_args(_params_args(tmp_path / "missing.json"))
    with pytest.raises(InputError, match="not a regular file"):
        params_from_args(_params_args(tmp_path))


# --- restore: outputs, sidecars and inputs checked before any work (issue 11) ----------
def _restore(original, edited, out, *extra):
    return ["restore", "--original", str(original), "--edited", str(edited), "--out", str(out),
            "--mode", "classic", "--face-backend", "dlib", "--quiet", *extra]  # fmt: skip


@pytest.fixture()
def no_model_loading(monkeypatch):
    """Any attempt to build the restorer (load a model) fails the test."""
    from engine.cli import commands

    def refuse(*args, **kwargs):
        raise AssertionError("the restorer was built before the checks")

    monkeypatch.setattr(commands, "restorer_from_args", refuse)


def test_restore_never_replaces_an_existing_sidecar_or_an_input(
    tmp_path, cli_pair, capsys, no_model_loading
):
    original, edited = cli_pair
    sidecar = tmp_path / "r.png.json"
    sidecar.write_text("a client's notes")
    assert main(_restore(original, edited, tmp_path / "r.png")) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "r.png.json: already exists (the sidecar)" in err and "Traceback" not in err
    assert sidecar.read_text() == "a client's notes" and not (tmp_path / "r.png").exists()
    # the sidecar's name is an input: refused even with --overwrite
    named = tmp_path / "x.png.json"
    named.write_bytes(edited.read_bytes())
    before = named.read_bytes()
    code = main(_restore(original, named, tmp_path / "x.png", "--overwrite"))
    assert code == EXIT_INPUT and "would overwrite the edited input" in capsys.readouterr().err
    assert named.read_bytes() == before


def test_restore_checks_output_and_inputs_before_loading_a_model(
    tmp_path, cli_pair, capsys, no_model_loading
):
    original, edited = cli_pair
    folder = tmp_path / "existing"
    folder.mkdir()
    cases = [
        (_restore(original, edited, folder), "existing: is a folder"),
        # a missing output folder is created, and removed again when the command is refused
        (_restore(tmp_path / "gone.jpg", edited, tmp_path / "new" / "r.png"), "gone.jpg: file"),
        (_restore(original, edited, tmp_path / "r.gif"), "cannot save as '.gif'"),
        (_restore(tmp_path / "missing.jpg", edited, tmp_path / "r.png"), "missing.jpg: file not"),
        (_restore(original, tmp_path, tmp_path / "r.png"), "is a folder, not an image"),
        (_restore(original, edited, tmp_path / "r.png", "--faces", "x"), "--faces"),
    ]
    for argv, message in cases:
        assert main(argv) == EXIT_INPUT, argv
        err = capsys.readouterr().err
        assert message in err and "already exists" not in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.png", "existing", "o.jpg"]


def test_input_errors_come_before_a_missing_model(tmp_path, cli_pair, capsys):
    original, _ = cli_pair
    argv = ["restore", "--original", str(original), "--edited", str(tmp_path / "gone.png"),
            "--out", str(tmp_path / "r.png"), "--mode", "diffusion",
            "--model", str(tmp_path / "no-model")]  # fmt: skip
    assert main(argv) == EXIT_INPUT
    assert "gone.png: file not found" in capsys.readouterr().err


def test_restore_sidecar_records_the_inputs_and_a_rerun_is_refused(tmp_path, cli_pair, capsys):
    from engine.io.export import SIDECAR_MARKER, read_sidecar

    original, edited = cli_pair
    out = tmp_path / "r.png"
    assert main(_restore(original, edited, out)) == EXIT_OK, capsys.readouterr().err
    data = read_sidecar(out)
    assert data is not None and data[SIDECAR_MARKER] == 1 and data["status"] == "ok"
    assert data["inputs"]["edited"]["sha256"] == _digest([edited])[edited]
    first = out.read_bytes(), (tmp_path / "r.png.json").read_bytes()
    assert main(_restore(original, edited, out)) == EXIT_INPUT
    assert (out.read_bytes(), (tmp_path / "r.png.json").read_bytes()) == first


# --- location (GPS) in results: stripped by default, kept on request (issue 11) ---------
GPS_IFD = 0x8825


def _with_gps(path, source):
    """`source` saved as a JPEG with a camera name and a GPS position in its EXIF."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    Image.open(source).save(path, format="JPEG", quality=95, exif=exif.tobytes())
    return path


def _gps_and_make(path):
    with Image.open(path) as image:
        exif = image.getexif()
        return exif.get_ifd(GPS_IFD).get(2), exif.get(0x010F)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [((), None), (("--strip-location",), None), (("--keep-location",), (52.0, 31.0, 12.0))],
)
def test_restore_strips_the_location_unless_kept(tmp_path, cli_pair, capsys, extra, expected):
    original, edited = cli_pair
    edited = _with_gps(tmp_path / "e-gps.jpg", edited)
    out = tmp_path / "r.jpg"
    assert main(_restore(original, edited, out, *extra)) == EXIT_OK, capsys.readouterr().err
    assert _gps_and_make(out) == (expected, "Canon")


def test_batch_strips_the_location_unless_kept(tmp_path, cli_pair, capsys):
    from engine.cli.batch import batch_cli

    original, edited = cli_pair
    orig_dir, edit_dir = tmp_path / "originals", tmp_path / "edited"
    orig_dir.mkdir(), edit_dir.mkdir()
    original.rename(orig_dir / "a.jpg")
    _with_gps(edit_dir / "a.jpg", edited)
    for name, extra, expected in (
        ("stripped", (), None),
        ("kept", ("--keep-location",), (52.0, 31.0, 12.0)),
    ):
        argv = ["--original-dir", str(orig_dir), "--edited-dir", str(edit_dir), "--out-dir",
                str(tmp_path / name), "--mode", "classic", "--face-backend", "dlib", "--quiet",
                "--no-report", *extra]  # fmt: skip
        assert batch_cli(argv) == EXIT_OK, capsys.readouterr().err
        (result,) = [p for p in (tmp_path / name).iterdir() if p.suffix != ".json"]
        assert _gps_and_make(result) == (expected, "Canon"), name


def test_location_options_are_one_choice():
    parser = build_parser()
    assert parser.parse_args(_restore("o", "e", "r.png")).strip_location is True
    assert parser.parse_args(_restore("o", "e", "r.png", "--keep-location")).strip_location is False
    assert parser.parse_args(["batch", "--original-dir", "o", "--edited-dir", "e", "--out-dir",
                              "r", "--keep-location"]).strip_location is False  # fmt: skip
    with pytest.raises(SystemExit):
        parser.parse_args(_restore("o", "e", "r.png", "--keep-location", "--strip-location"))


def test_restore_faces_are_numbered_from_1_and_default_to_changed(tmp_path, capsys):
    """Issue 12 D2/D15: --faces takes the window's 1-based numbers; by default a face the
    edit did not change is left as edited, and the CLI says why."""
    import argparse

    from engine.cli.commands import FACES_HELP, _add_restore_parser
    from tests.helpers import sample_photo

    photo = Image.open(sample_photo("grace_hopper")).convert("RGB")
    original, edited = tmp_path / "o.png", tmp_path / "e.png"
    photo.save(original)
    Image.fromarray(np.clip(np.asarray(photo).astype(int) + 20, 0, 255).astype(np.uint8)).save(
        edited
    )
    base = ["restore", "--original", str(original), "--edited", str(edited), "--mode", "classic"]
    base += ["--face-backend", "dlib"]
    assert main([*base, "--out", str(tmp_path / "a.png")]) == EXIT_OK
    err = capsys.readouterr().err
    assert "face 1: left as edited (unchanged" in err
    sidecar = json.loads((tmp_path / "a.png.json").read_text())
    assert sidecar["faces"] == [] and sidecar["left_alone"][0]["face"] == 1
    assert main([*base, "--out", str(tmp_path / "b.png"), "--faces", "1"]) == EXIT_OK
    assert "face 1: paired with original face 1" in capsys.readouterr().err
    sidecar = json.loads((tmp_path / "b.png.json").read_text())
    assert sidecar["faces"][0]["face"] == 1 and sidecar["faces"][0]["original_face"] == 1
    assert main([*base, "--out", str(tmp_path / "c.png"), "--faces", "0"]) == EXIT_INPUT
    assert "numbered from 1" in capsys.readouterr().err
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    _add_restore_parser(subparsers)
    help_text = " ".join(subparsers.choices["restore"].format_help().split())
    assert "numbered left to right from 1" in help_text and FACES_HELP[:40] in help_text

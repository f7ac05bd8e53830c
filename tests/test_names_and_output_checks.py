"""Hostile names and careless outputs (issue 23): control characters of file names never
reach the terminal or break a report; an output that cannot be written is refused before
the work."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.cli.batch import batch_cli
from engine.cli.options import EXIT_OK
from engine.io.names import escape_controls, md_cell, md_code

# Retitles an xterm, then clears the screen; a right-to-left override; an undecodable byte.
EVIL = "a\x1b]0;pwned\x07b\x1b[2Jc\u202ed"


def test_every_control_character_is_shown_as_an_escape():
    assert escape_controls(EVIL) == "a\\x1b]0;pwned\\x07b\\x1b[2Jc\\u202ed"
    assert escape_controls(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"  # not UTF-8
    assert escape_controls("line\nnext\ttab\x7f\x85") == "line\\x0anext\\x09tab\\x7f\\x85"
    assert escape_controls("line\nnext\t", keep="\n\t") == "line\nnext\t"
    assert escape_controls("café 写真 Ω.png") == "café 写真 Ω.png"  # printable text is kept


def test_a_markdown_cell_or_code_span_holds_any_name():
    assert md_cell("a|b\nc\\d") == "a\\|b\\\\x0ac\\\\d"
    assert md_code("odd`name") == "`` odd`name ``"


def _pair_named(folder, name, cli_pair):
    original, edited = cli_pair
    return original.rename(folder / f"{name}.jpg"), edited.rename(folder / f"{name}-edit.png")


def test_restore_never_prints_a_names_control_characters(tmp_path, cli_pair, capfd):
    original, edited = _pair_named(tmp_path, EVIL, cli_pair)
    out = tmp_path / f"{EVIL}-result.png"
    code = main(["restore", "--original", str(original), "--edited", str(edited),
                 "--out", str(out), "--mode", "classic", "--face-backend", "dlib",
                 "--faces", "all"])  # fmt: skip
    printed = capfd.readouterr()
    assert code == EXIT_OK, printed.err
    assert out.is_file()  # the file keeps its real name; only what is printed is escaped
    for text in (printed.out, printed.err):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "a\\x1b]0;pwned\\x07b" in printed.out  # the result's path, recognisable


def test_batch_output_and_markdown_report_survive_hostile_names(tmp_path, cli_pair, capfd):
    orig_dir, edit_dir, out_dir = tmp_path / "originals", tmp_path / "edited", tmp_path / "out"
    orig_dir.mkdir(), edit_dir.mkdir()
    original, edited = cli_pair
    name = "x|y\nz\x1b[31m"
    original.rename(orig_dir / f"{name}.jpg")
    edited.rename(edit_dir / f"{name}.png")
    (edit_dir / "lonely\x1b[2J|.png").write_bytes(b"not an image")  # unpaired: listed
    code = batch_cli(["--original-dir", str(orig_dir), "--edited-dir", str(edit_dir),
                      "--out-dir", str(out_dir), "--mode", "classic", "--face-backend",
                      "dlib", "--faces", "all"])  # fmt: skip
    printed = capfd.readouterr()
    assert code == EXIT_OK, printed.err
    assert "\x1b" not in printed.out + printed.err
    (report,) = out_dir.glob("*.md")
    text = report.read_text(encoding="utf-8")
    assert "\x1b" not in text
    files = text.split("## Files", 1)[1].strip().splitlines()
    header, rule, *rows = files
    assert len(rows) == 1  # one row, not broken into lines by the name's newline
    assert rows[0].count(" | ") == header.count(" | ")  # `|` in the name did not add cells
    assert "x\\|y\\\\x0az\\\\x1b[31m" in rows[0]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file names hold any byte")
def test_a_name_that_is_not_utf8_is_reported_not_a_traceback(tmp_path, cli_pair, capfd):
    orig_dir, edit_dir, out_dir = tmp_path / "originals", tmp_path / "edited", tmp_path / "out"
    orig_dir.mkdir(), edit_dir.mkdir()
    original, edited = cli_pair
    name = os.fsdecode(b"caf\xe9")
    original.rename(orig_dir / f"{name}.jpg")
    edited.rename(edit_dir / f"{name}.png")
    code = batch_cli(["--original-dir", str(orig_dir), "--edited-dir", str(edit_dir),
                      "--out-dir", str(out_dir), "--mode", "classic", "--face-backend",
                      "dlib", "--faces", "all"])  # fmt: skip
    printed = capfd.readouterr()
    assert code == EXIT_OK, printed.err
    assert "Traceback" not in printed.err
    # Markdown: the escape's backslash made literal (renders as caf\xe9); CSV: as is
    assert "| caf\\\\xe9.png | ok |" in (out_dir / "editedid-batch-report.md").read_text()
    assert "caf\\xe9.png" in (out_dir / "editedid-batch-report.csv").read_text()
    assert (out_dir / f"{name}.png").is_file()  # the result keeps the real name


def test_names_in_either_unicode_normal_form_pair(tmp_path):
    """macOS writes names decomposed (NFD), Windows and Linux composed (NFC): a client's
    original from one and the edit from the other are still one pair."""
    import unicodedata

    from engine.batch.run import plan_batch

    nfc, nfd = (unicodedata.normalize(form, "Café Ölçü") for form in ("NFC", "NFD"))
    assert nfc != nfd
    orig, edit = tmp_path / "originals", tmp_path / "edited"
    orig.mkdir(), edit.mkdir()
    (orig / f"{nfc}.jpg").write_bytes(b"")
    (edit / f"{nfd}_edited.png").write_bytes(b"")
    (orig / f"{nfd.upper()}2.jpg").write_bytes(b"")  # case and form both differ
    (edit / f"{nfc.lower()}2.png").write_bytes(b"")
    plan = plan_batch(orig, edit, tmp_path / "out")
    pairs = {(i.original.name, i.edited.name) for i in plan.items}
    assert pairs == {
        (f"{nfc}.jpg", f"{nfd}_edited.png"),
        (f"{nfd.upper()}2.jpg", f"{nfc.lower()}2.png"),
    }
    assert not plan.unpaired_originals and not plan.unpaired_edited


def test_one_name_in_two_normal_forms_is_ambiguous_not_two_photos(tmp_path):
    import unicodedata

    from engine.io.folders import image_files, pair_by_name

    orig = tmp_path / "originals"
    orig.mkdir()
    for form in ("NFC", "NFD"):
        (orig / f"{unicodedata.normalize(form, 'José')}.png").write_bytes(b"")
    (tmp_path / "josé.png").write_bytes(b"")
    pairing = pair_by_name(image_files(orig), [tmp_path / "josé.png"])
    assert pairing.pairs == [] and len(pairing.ambiguous) == 1


def test_an_output_name_whose_sidecar_cannot_exist_is_refused_before_the_work(
    tmp_path, cli_pair, capfd, monkeypatch
):
    import engine.photo.pipeline
    from engine.cli.options import EXIT_INPUT

    def no_work(*args, **kwargs):
        raise AssertionError("the photos were analysed before the name was checked")

    monkeypatch.setattr(engine.photo.pipeline, "analyze_photos", no_work)
    original, edited = cli_pair
    out = tmp_path / ("r" * 248 + ".png")  # 252 bytes: fits; its sidecar's 257 do not
    code = main(["restore", "--original", str(original), "--edited", str(edited),
                 "--out", str(out), "--mode", "classic", "--face-backend", "dlib"])  # fmt: skip
    err = capfd.readouterr().err
    assert code == EXIT_INPUT, err
    assert "name is too long" in err and "at most 250 bytes" in err
    assert not out.exists()


def test_a_restore_into_a_read_only_folder_is_refused_before_the_model_loads(
    tmp_path, cli_pair, capfd, monkeypatch
):
    """Root ignores folder modes, so the folder says 'read-only' the way the OS does:
    creating a file in it fails with EACCES."""
    import errno
    import tempfile

    import engine.cli.commands
    from engine.cli.options import EXIT_INPUT

    out_dir = tmp_path / "delivery"
    out_dir.mkdir()
    real = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == out_dir:
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    def no_model(args):
        raise AssertionError("the model was loaded before the folder was checked")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(engine.cli.commands, "restorer_from_args", no_model)
    original, edited = cli_pair
    code = main(["restore", "--original", str(original), "--edited", str(edited),
                 "--out", str(out_dir / "r.png"), "--mode", "diffusion"])  # fmt: skip
    err = capfd.readouterr().err
    assert code == EXIT_INPUT, err
    assert "delivery: the output folder is read-only" in err

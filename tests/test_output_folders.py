"""editedid-cli creates missing output folders (issue 19): `restore --out new/dir/r.png` and
`batch --out-dir new/dir/results` work where the folders do not exist yet; a refused
output leaves no folder behind."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from engine.cli.commands import EXIT_INPUT, EXIT_OK, main


@pytest.fixture()
def pair(request):
    return request.getfixturevalue("cli_pair")


def _restore(original, edited, out):
    return ["restore", "--original", str(original), "--edited", str(edited), "--out", str(out),
            "--mode", "classic", "--face-backend", "dlib", "--quiet"]  # fmt: skip


def test_restore_creates_the_missing_output_folders(tmp_path, pair, capsys):
    out = tmp_path / "new" / "dir" / "r.png"
    assert main(_restore(*pair, out)) == EXIT_OK, capsys.readouterr().err
    with Image.open(out) as result:
        assert result.size == (160, 200)
    assert json.loads(out.with_name("r.png.json").read_text())["mode"] == "classic"


def test_a_refused_output_leaves_no_folder_behind(tmp_path, pair, capsys):
    # a refused extension: the check fails after the folders were made; they go again
    out = tmp_path / "new" / "dir" / "r.gif"
    assert main(_restore(*pair, out)) == EXIT_INPUT
    assert "cannot save as '.gif'" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    # a file where the folder should be: said, and nothing made
    (tmp_path / "afile").write_text("x")
    assert main(_restore(*pair, tmp_path / "afile" / "r.png")) == EXIT_INPUT
    assert "it is a file" in capsys.readouterr().err


def test_batch_creates_the_missing_output_folders(tmp_path, pair, capsys):
    from engine.cli.batch import batch_cli

    original, edited = pair
    orig_dir, edit_dir = tmp_path / "originals", tmp_path / "edited"
    orig_dir.mkdir(), edit_dir.mkdir()
    original.rename(orig_dir / "a.jpg")
    edited.rename(edit_dir / "a.png")
    out_dir = tmp_path / "new" / "dir" / "results"
    argv = ["--original-dir", str(orig_dir), "--edited-dir", str(edit_dir), "--out-dir",
            str(out_dir), "--mode", "classic", "--face-backend", "dlib", "--quiet",
            "--no-report"]  # fmt: skip
    assert batch_cli(argv) == EXIT_OK, capsys.readouterr().err
    assert [p.name for p in sorted(out_dir.iterdir()) if p.suffix != ".json"] == ["a.png"]

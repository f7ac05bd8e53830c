"""`EditedID --self-test` in-process: every check runs and passes on this machine."""

from __future__ import annotations

import re

from editedid_desktop import selftest


def test_self_test_passes_and_reports_every_check():
    lines: list[str] = []
    code = selftest.run_self_test(lines.append, device="cpu")
    report = "\n".join(lines)
    assert code == 0, report
    assert lines[0].startswith("EditedID ") and lines[0].endswith("self-test")
    for name in selftest.CHECKS:
        assert re.search(rf"^  PASS  {re.escape(name)}\s+\d+\.\d\d s  \S", report, re.M), report
    count = len(selftest.CHECKS)
    assert lines[-1].startswith(f"RESULT: PASS ({count} of {count} checks)")
    assert "DNG developed by LibRaw" in report and "HEIC by libheif" in report
    assert "restore" in report and "2 faces 32x32" in report


def test_a_failing_check_makes_the_result_fail(monkeypatch):
    def broken(state):
        raise RuntimeError("resources are missing")

    monkeypatch.setitem(selftest._CHECK_FNS, "resources", broken)
    monkeypatch.setattr(selftest, "CHECKS", ("python", "resources"))
    lines: list[str] = []
    assert selftest.run_self_test(lines.append) == 1
    report = "\n".join(lines)
    assert "  PASS  python" in report
    assert "  FAIL  resources" in report and "resources are missing" in report
    assert lines[-1].startswith("RESULT: FAIL (1 of 2 checks failed: resources)")


def test_module_list_covers_both_packages():
    names = selftest.all_module_names()
    assert "engine.diffusion.restore" in names and "engine.cli.commands" in names
    assert "editedid_desktop.app" in names and "editedid_desktop.selftest" in names

"""Quality presets (issue 13): the paper's speed knob in params, the CLI and the app."""

from __future__ import annotations

import argparse

import pytest

from engine.diffusion.cost import describe_presets, preset_costs
from engine.errors import InputError
from engine.params import PRESETS, EditedIDParams, preset_of, with_preset


def test_presets_map_to_their_params():
    assert with_preset(EditedIDParams(), "fast").nulltext_iters == 3
    best = with_preset(EditedIDParams(guidance=5.0), "best")
    assert (best.steps, best.dpm_range, best.nulltext_iters, best.guidance) == (
        10,
        (8, 10),
        10,
        5.0,
    )
    assert preset_of(EditedIDParams()) == "balanced"  # the paper's settings are the default
    assert preset_of(EditedIDParams(nulltext_iters=7)) is None
    with pytest.raises(InputError, match="fast, balanced, best"):
        with_preset(EditedIDParams(), "turbo")


def test_preset_costs_follow_the_counts():
    costs = preset_costs(1)
    # 193 forward samples before the target-only entanglement (36 -> 12 per face)
    assert costs["balanced"]["forward"] == 169 and costs["balanced"]["backward"] == 120
    assert costs["fast"]["tflop"] < costs["balanced"]["tflop"] < costs["best"]["tflop"]
    assert costs["fast"]["backward"] == 6 * 3 * 2  # steps x iterations x 2 identities
    assert "36 backward samples" in describe_presets()["fast"]


def test_cli_preset_then_options_on_top():
    from engine.cli.options import add_param_options, params_from_args

    parser = argparse.ArgumentParser()
    add_param_options(parser)
    assert params_from_args(parser.parse_args(["--preset", "fast"])) == with_preset(
        EditedIDParams(), "fast"
    )
    mixed = params_from_args(parser.parse_args(["--preset", "best", "--nulltext-iters", "4"]))
    assert (mixed.steps, mixed.nulltext_iters) == (10, 4)
    assert "UNet TFLOP per face" in parser.format_help()


def test_app_quality_box_applies_and_follows_presets(qtbot):
    from editedid_desktop.model.session import Session
    from editedid_desktop.params_panel import ParamsPanel

    session = Session()
    panel = ParamsPanel(session)
    qtbot.addWidget(panel)
    box = panel.preset_box
    assert box.currentData() == "balanced"
    box.activated.emit(box.findData("best"))
    assert session.params.steps == 10 and panel.widgets["steps"].value() == 10
    panel.widgets["nulltext_iters"].setValue(4)  # by hand: no preset any more
    assert box.currentText() == "Custom"
    session.params = with_preset(session.params, "fast")
    assert box.currentData() == "fast"
    tips = [box.itemData(i, 3) for i in range(len(PRESETS))]  # 3 = Qt.ToolTipRole
    assert all("TFLOP" in tip and "GiB" in tip for tip in tips)


def test_pricing_the_presets_imports_no_torch():
    """The Advanced panel prices the presets while the app starts, before torch loads."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\nfrom engine.diffusion.cost import describe_presets\n"
        "describe_presets()\nprint('torch' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]

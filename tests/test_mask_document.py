"""MaskDocument and its Qt-free MaskModel: auto masks, user edits as ROI-only undo steps,
one step per stroke."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QRect

from editedid_desktop.mask_document import MaskDocument
from editedid_desktop.model.masks import MaskModel, Rect, brush_kernel, stroke_dab_centres


@pytest.fixture
def doc(qapp):
    document = MaskDocument()
    face = np.zeros((120, 160), np.uint8)
    face[30:90, 50:110] = 255
    element = np.zeros((120, 160), np.uint8)
    element[40:55, 30:130] = 255
    document.set_auto(0, "face", face)
    document.set_auto(0, "element", element)
    return document


def test_auto_masks_are_current_and_not_edited(doc):
    assert doc.image_size == (160, 120)
    assert doc.mask(0, "face")[60, 80] == 255
    assert not doc.is_edited(0, "face")
    assert doc.user_masks() == {}
    # mask() is a copy: changing it does not change the document.
    copy = doc.mask(0, "face")
    copy[:] = 0
    assert doc.mask(0, "face")[60, 80] == 255
    with pytest.raises(ValueError):
        doc.mask_view(0, "face")[0, 0] = 1  # read-only view
    # A face without masks reads as empty; a mask of the wrong size is refused.
    assert doc.mask(3, "element").sum() == 0
    with pytest.raises(ValueError, match="160x120"):
        doc.set_auto(1, "face", np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        doc.mask(0, "hat")


def test_stroke_is_one_roi_command_with_exact_undo_redo(doc, qtbot):
    before = doc.mask(0, "element")
    with qtbot.waitSignal(doc.changed) as blocker:
        command = doc.paint(0, "element", [(20, 100), (60, 100), (100, 105)], radius=6)
    face, kind, region = blocker.args
    assert (face, kind) == (0, "element")
    assert region == command.rect
    assert doc.undo_stack.count() == 1
    assert doc.undo_stack.undoText() == "Paint element mask"
    after = doc.mask(0, "element")
    assert after[100, 40] == 255 and after[103, 90] == 255
    assert after[10, 10] == 0 and before[100, 40] == 0
    # Changed pixels lie inside the command's rectangle; the rectangle is the stroke's.
    changed = np.argwhere(after != before)
    r = command.rect
    assert changed[:, 0].min() >= r.top() and changed[:, 0].max() <= r.bottom()
    assert changed[:, 1].min() >= r.left() and changed[:, 1].max() <= r.right()
    assert r.height() <= 2 * 6 + 8
    assert command.byte_size() == 2 * r.width() * r.height()
    assert doc.is_edited(0, "element") and not doc.is_edited(0, "face")
    user = doc.user_masks()
    assert list(user) == [0] and user[0][0] is None
    np.testing.assert_array_equal(user[0][1], after)

    doc.undo_stack.undo()
    np.testing.assert_array_equal(doc.mask(0, "element"), before)
    assert not doc.is_edited(0, "element")
    doc.undo_stack.redo()
    np.testing.assert_array_equal(doc.mask(0, "element"), after)
    assert doc.is_edited(0, "element")


def test_stroke_has_no_gaps_and_soft_brush_is_soft(doc):
    doc.paint(1, "face", [(10, 10), (150, 10)], radius=3, hardness=1.0)
    assert (doc.mask(1, "face")[10, 10:151] == 255).all()
    centres = stroke_dab_centres([(0, 0), (100, 0)], radius=8)
    gaps = np.diff([c[0] for c in centres])
    assert gaps.max() <= 2.0 + 1e-6  # spacing radius/4
    hard, soft = brush_kernel(10, 1.0), brush_kernel(10, 0.0)
    assert hard[10, 10] == soft[10, 10] == 255
    assert hard[10, 17] == 255 and 0 < soft[10, 17] < 128
    assert hard[0, 0] == soft[0, 0] == 0


def test_eraser(doc):
    doc.paint(0, "face", [(60, 60), (100, 60)], radius=5, erase=True)
    mask = doc.mask(0, "face")
    assert mask[60, 80] == 0 and mask[80, 80] == 255
    assert doc.undo_stack.undoText() == "Erase face mask"
    doc.undo_stack.undo()
    assert doc.mask(0, "face")[60, 80] == 255


def test_clear_invert_reset_are_undoable(doc):
    auto = doc.mask(0, "face")
    doc.clear(0, "face")
    assert doc.mask(0, "face").sum() == 0 and doc.is_edited(0, "face")
    assert doc.undo_stack.undoText() == "Clear face mask"
    clear_cmd = doc.undo_stack.command(0)
    assert clear_cmd.byte_size() == 60 * 60  # the non-zero ROI only, "after" is one value

    doc.undo_stack.undo()
    np.testing.assert_array_equal(doc.mask(0, "face"), auto)
    assert not doc.is_edited(0, "face")

    doc.invert(0, "element")
    assert doc.undo_stack.undoText() == "Invert element mask"
    assert doc.mask(0, "element")[0, 0] == 255 and doc.mask(0, "element")[45, 80] == 0
    assert doc.undo_stack.command(doc.undo_stack.index() - 1).byte_size() == 0
    doc.undo_stack.undo()
    assert doc.mask(0, "element")[0, 0] == 0

    doc.paint(0, "face", [(5, 5)], radius=4)
    doc.reset_to_auto(0, "face")
    assert doc.undo_stack.undoText() == "Reset face mask to auto"
    np.testing.assert_array_equal(doc.mask(0, "face"), auto)
    assert not doc.is_edited(0, "face")
    doc.undo_stack.undo()
    assert doc.mask(0, "face")[5, 5] == 255 and doc.is_edited(0, "face")


def test_new_auto_mask_respects_user_edits(doc):
    doc.paint(0, "face", [(5, 5)], radius=4)
    new_auto = np.full((120, 160), 255, np.uint8)
    doc.set_auto(0, "face", new_auto)
    assert doc.mask(0, "face")[100, 5] == 0  # the user's mask is kept
    doc.reset_to_auto(0, "face")
    assert (doc.mask(0, "face") == 255).all()  # reset goes to the new auto mask
    doc.set_auto(0, "element", new_auto)  # unedited: replaced at once
    assert (doc.mask(0, "element") == 255).all()


def test_user_mask_from_a_project_and_missing_auto(doc):
    saved = np.zeros((120, 160), np.uint8)
    saved[0:10, 0:10] = 255
    doc.set_user_mask(0, "face", saved)
    np.testing.assert_array_equal(doc.mask(0, "face"), saved)
    assert doc.is_edited(0, "face") and doc.undo_stack.undoText() == "Load saved mask"
    doc.undo_stack.undo()
    assert not doc.is_edited(0, "face") and doc.mask(0, "face")[60, 80] == 255
    doc.set_auto(1, "element", None)  # the engine found no element: empty auto mask
    assert doc.has_mask(1, "element") and not doc.mask(1, "element").any()
    with pytest.raises(ValueError, match="160x120"):
        doc.set_user_mask(0, "face", np.zeros((5, 5), np.uint8))


def test_reset_drops_everything(doc, qtbot):
    doc.paint(0, "face", [(5, 5)], radius=4)
    with qtbot.waitSignal(doc.changed):
        doc.reset((300, 200))
    assert doc.undo_stack.count() == 0 and doc.faces() == []
    assert doc.image_size == (300, 200)
    doc.paint(2, "element", [(150, 100)], radius=10)
    assert doc.mask(2, "element")[100, 150] == 255


def test_paint_on_a_6000x4000_mask_stays_roi_only(qapp):
    doc = MaskDocument()
    doc.reset((6000, 4000))
    rects: list[QRect] = []
    doc.changed.connect(lambda face, kind, rect: rects.append(QRect(rect)))
    points = [(3000 + 4 * i, 2000 + 2 * i) for i in range(60)]
    command = doc.paint(0, "face", points, radius=25, hardness=0.7)
    full = 6000 * 4000
    assert command.byte_size() < full / 200  # 0.5 % of one mask
    assert rects == [command.rect]
    assert rects[0].width() < 300 and rects[0].height() < 200
    doc.undo_stack.undo()
    assert not doc.mask_view(0, "face").any()


def test_painting_off_the_frame_does_nothing(doc):
    assert doc.paint(0, "face", [(-500, -500), (-400, -450)], radius=5) is None
    assert doc.undo_stack.count() == 0


def test_model_edits_replay_without_qt():
    """The plain model: each edit is a value that undo/redo replays; no Qt involved."""
    model = MaskModel()
    model.reset((50, 40))
    changes = []
    model.changed.connect(lambda face, kind, rect: changes.append((face, kind, rect)))
    stroke = model.paint(0, "face", [(10, 10), (30, 10)], radius=3)
    assert stroke is not None and stroke.text == "Paint face mask"
    assert len(stroke.atoms) == 1 and stroke.keys == {(0, "face")}
    assert changes == [(0, "face", stroke.rect)]
    painted = model.mask(0, "face")
    invert = model.invert(0, "face")
    assert invert.byte_size() == 0 and changes[-1][2] == Rect(0, 0, 50, 40)
    model.undo(invert)
    model.undo(stroke)
    assert not model.mask(0, "face").any() and not model.is_edited(0, "face")
    model.redo(stroke)
    np.testing.assert_array_equal(model.mask(0, "face"), painted)
    assert model.is_edited(0, "face")
    assert model.reset_to_auto(0, "element") is None  # nothing to reset: no step

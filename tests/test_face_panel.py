"""Face cards and the Advanced panel as a user meets them: wheel turns over a scrolled
panel, dragging the overlap sliders, the link button (issue 20, items 2 and 3).

The analysis is a stand-in (SimpleNamespace faces) so no engine runs: these tests are
about what the widgets show and send, not about detection.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea

from editedid_desktop.face_panel import FaceListPanel, FacePanel
from editedid_desktop.model.session import PAIRING_AUTO, Session
from editedid_desktop.params_panel import ParamsPanel


def _face(index: int) -> SimpleNamespace:
    thumb = np.full((96, 96, 3), 40 * (index + 1), np.uint8)
    return SimpleNamespace(
        index=index,
        original_index=index,
        too_small=False,
        restore_by_default=True,
        warnings=[],
        thumb_original=thumb,
        thumb_edited=thumb,
        id_before=None,
        left_alone_reason="",
        plausible=True,
    )


def _session(faces: int) -> Session:
    session = Session()
    session.set_analysis(
        SimpleNamespace(
            faces=[_face(i) for i in range(faces)],
            original_faces=[object()] * faces,
            backend="stand-in",
        )
    )
    return session


def _turn_wheel(widget, notches: int = -1) -> None:
    """One real wheel event over the middle of `widget`, delivered as Qt delivers it:
    to the widget under the pointer (negative notches: towards the user, down)."""
    centre = widget.rect().center()
    event = QWheelEvent(
        QPointF(centre),
        QPointF(widget.mapToGlobal(centre)),
        QPoint(0, 0),
        QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def _scroll_bar(panel):
    return panel.findChild(QScrollArea).verticalScrollBar()


@pytest.fixture
def face_list(qtbot):
    session = _session(3)
    panel = FaceListPanel(session)
    qtbot.addWidget(panel)
    panel.rebuild()
    panel.resize(320, 260)  # three cards do not fit: the list scrolls
    panel.show()
    qtbot.waitExposed(panel)
    panel.setFocus()  # nothing in a card has the focus, as after a click on the canvas
    return session, panel


def test_wheel_over_an_unfocused_pairing_box_scrolls_the_list(qtbot, face_list):
    session, panel = face_list
    card = panel.panels[0]
    combo = card.pairing_combo
    bar = _scroll_bar(panel)
    assert bar.maximum() > 0 and bar.value() == 0
    assert combo.currentText() == "Auto (face 1)" and not combo.hasFocus()
    chosen = []
    panel.pairing_changed.connect(lambda *args: chosen.append(args))

    _turn_wheel(combo)

    assert combo.currentText() == "Auto (face 1)"  # the value did not move
    assert session.settings_for(0).pairing == PAIRING_AUTO and chosen == []
    assert bar.value() > 0  # the list scrolled instead


def test_every_value_control_of_a_card_ignores_the_wheel_until_clicked(qtbot, face_list):
    session, panel = face_list
    card = panel.panels[1]
    for control in (card.pairing_combo, card.lambda_o, card.lambda_e):
        before = session.settings_for(1)
        _turn_wheel(control)
        assert session.settings_for(1) == before, control
    # A control the user clicked (focused) takes the wheel as usual.
    card.lambda_o.setFocus()
    qtbot.waitUntil(card.lambda_o.hasFocus, timeout=2000)
    _turn_wheel(card.lambda_o, notches=1)
    assert session.settings_for(1).overlap != (0.5, 0.5)


def test_wheel_over_the_advanced_panel_scrolls_it(qtbot):
    session = Session()
    panel = ParamsPanel(session)
    qtbot.addWidget(panel)
    panel.resize(360, 300)
    panel.show()
    qtbot.waitExposed(panel)
    panel.setFocus()
    bar = _scroll_bar(panel)
    assert bar.maximum() > 0
    steps, guidance = panel.widgets["steps"], panel.widgets["guidance"]
    preset = panel.preset_box.currentIndex()
    _turn_wheel(steps)
    _turn_wheel(guidance)
    _turn_wheel(panel.preset_box)
    assert session.params.steps == 6 and session.params.guidance == 7.5
    assert panel.preset_box.currentIndex() == preset
    assert steps.value() == 6 and bar.value() > 0


def _drag(qtbot, slider, to_fraction: float) -> None:
    """Press on the slider's handle and drag it along the groove, as with a mouse."""
    from PySide6.QtWidgets import QStyle, QStyleOptionSlider

    option = QStyleOptionSlider()
    slider.initStyleOption(option)
    handle = slider.style().subControlRect(
        QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle, slider
    )
    start = handle.center()
    end = QPoint(int(slider.width() * to_fraction), start.y())
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=start)
    for step in range(1, 11):
        x = start.x() + (end.x() - start.x()) * step // 10
        qtbot.mouseMove(slider, QPoint(x, start.y()))
    qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=end)


def test_dragging_lambda_o_updates_both_labels_and_lambda_e_live(qtbot):
    session = _session(1)
    card = FacePanel(session, session.faces[0])
    qtbot.addWidget(card)
    card.resize(360, 420)
    card.show()
    qtbot.waitExposed(card)
    assert card.lambda_o_value.text() == "0.50" and card.link_button.text() == "Linked"

    _drag(qtbot, card.lambda_o, 0.85)

    lambda_o, lambda_e = session.settings_for(0).overlap
    assert lambda_o > 0.6 and lambda_e == pytest.approx(1 - lambda_o)
    assert card.lambda_o_value.text() == f"{lambda_o:.2f}"  # the label follows the drag
    assert card.lambda_e.value() == round(lambda_e * 100)  # linked: λe moved too
    assert card.lambda_e_value.text() == f"{lambda_e:.2f}"

    qtbot.mouseClick(card.link_button, Qt.MouseButton.LeftButton)
    assert not session.settings_for(0).overlap_linked
    assert card.link_button.text() == "Free"  # the button says what it now does
    card.lambda_e.setValue(40)  # free: λo stays
    assert session.settings_for(0).overlap == (lambda_o, 0.4)
    assert card.lambda_o.value() == round(lambda_o * 100)
    assert card.lambda_e_value.text() == "0.40"


@pytest.mark.parametrize("make_panel", [ParamsPanel, lambda s: FaceListPanel(_session(2))])
def test_a_docked_panel_is_never_narrower_than_its_fields(qtbot, make_panel):
    """Issue 20 item 6: at 1920 px the Advanced panel was cut off on the right (its dock
    narrower than its fields, the rest behind a horizontal scroll bar at the bottom)."""
    from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

    window = QMainWindow()
    qtbot.addWidget(window)
    window.setCentralWidget(QWidget())
    panel = make_panel(Session())
    if isinstance(panel, FaceListPanel):
        panel.rebuild()
    dock = QDockWidget("Panel", window)
    dock.setWidget(panel)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resize(1920, 1080)
    window.show()
    qtbot.waitExposed(window)
    QApplication.sendPostedEvents()  # the pending layout requests: the dock as shown
    window.resizeDocks([dock], [120], Qt.Orientation.Horizontal)  # dragged narrow
    QApplication.sendPostedEvents()
    area = panel.findChild(QScrollArea)
    content = area.widget()
    assert content.width() >= content.minimumSizeHint().width()  # nothing clipped
    assert area.horizontalScrollBar().maximum() == 0
    assert dock.geometry().right() <= window.width()


def test_each_card_shows_the_face_in_the_original_the_edit_and_the_result(qtbot):
    """Issue 20: face thumbnails in the Faces list: original and edited from the analysis,
    and the face as the latest result (classic preview or restore) has it."""
    session = _session(2)
    panel = FaceListPanel(session)
    qtbot.addWidget(panel)
    panel.rebuild()
    card = panel.panels[1]
    for label in (card.original_thumb, card.edited_thumb):
        assert not label.pixmap().isNull()
        assert label.pixmap().toImage().pixelColor(42, 42).red() == 80  # face 2's thumb
    assert card.result_thumb.isHidden()  # no result yet

    image = np.zeros((200, 300, 3), np.uint8)
    image[50:110, 200:260] = (200, 30, 30)  # face 2's box in the result
    outcome = SimpleNamespace(index=1, box=[200.0, 50.0, 260.0, 110.0], id_after=None)
    session.classic_result = SimpleNamespace(image=image, faces=[outcome], mode="classic")

    assert not card.result_thumb.isHidden()
    centre = card.result_thumb.pixmap().toImage()
    assert centre.pixelColor(centre.width() // 2, centre.height() // 2).red() == 200
    assert "Classic preview" in card.result_thumb.toolTip()
    assert panel.panels[0].result_thumb.isHidden()  # face 1 has no outcome

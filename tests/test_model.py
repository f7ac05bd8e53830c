"""The Qt-free document model: observable properties, drafts, the session, settings."""

from __future__ import annotations

import numpy as np
import pytest

from editedid_desktop.model.draft import Draft
from editedid_desktop.model.observable import Event, Observable, Property
from editedid_desktop.model.session import FaceSettings, Session
from editedid_desktop.model.settings import MemoryStore, SettingsModel
from engine.params import EditedIDParams


class Thing(Observable):
    size = Property(1)
    tags = Property(factory=list)
    image = Property(None, eq=False)
    poked = Event()


def test_properties_notify_only_on_change():
    thing, seen = Thing(), []
    thing.size_changed.connect(lambda v: seen.append(("size", v)))
    thing.changed.connect(lambda name, v: seen.append(("any", name)))
    thing.size = 1  # the default: no change
    thing.size = 2
    thing.size = 2
    assert seen == [("size", 2), ("any", "size")]
    assert Thing().tags is not Thing().tags  # factory: one list per instance
    array = np.zeros(3)
    thing.image = array
    thing.image = array  # same object: no change
    thing.image = array.copy()  # eq=False: a new array is a change, not compared
    assert [s for s in seen if s[0] == "any"].count(("any", "image")) == 2
    with pytest.raises(TypeError):
        Thing(colour="red")


def test_batch_holds_notifications_until_the_end():
    thing, seen = Thing(), []
    thing.size_changed.connect(lambda v: seen.append((v, thing.tags)))
    with thing.batch():
        thing.size = 5
        thing.size = 6
        thing.tags = ["a"]
        assert seen == []
    assert seen == [(6, ["a"])]  # once, latest value, the whole model already updated


def test_events_and_disconnect():
    thing, seen = Thing(), []
    thing.poked.connect(seen.append)
    thing.poked.emit(1)
    thing.poked.disconnect(seen.append)
    thing.poked.emit(2)
    thing.poked.disconnect(seen.append)  # not connected: no error
    assert seen == [1] and Thing().poked is not thing.poked


def test_draft_keeps_invalid_fields_until_they_validate():
    session = Session()
    draft = Draft(
        lambda: session.params,
        lambda params: setattr(session, "params", params),
        session.params_changed,
    )
    shown = []
    draft.property_changed("steps").connect(shown.append)
    draft.set("steps", 3)  # dpm_range (4, 6) no longer fits
    assert "dpm_range" in draft.error and session.params.steps == 6
    assert draft.get("steps") == 3
    draft.set("dpm_range", (1, 3))
    assert draft.error == "" and session.params.steps == 3
    assert session.params.dpm_range == (1, 3)
    session.params = EditedIDParams()  # outside change: shown again
    assert shown == [6] and draft.get("steps") == 6
    draft.close()


def test_session_dirty_flag_and_clear():
    session = Session()
    titles = []
    session.dirty_changed.connect(titles.append)
    session.update_face(0, element_words="hat")
    assert session.dirty and titles == [True]
    assert session.settings_for(0) == FaceSettings(element_words="hat")
    session.classic_result = object()  # a preview is not unsaved work
    session.dirty = False
    session.classic_result = object()
    assert not session.dirty
    session.params = EditedIDParams(seed=2)  # persisted: dirty
    assert session.dirty
    session.clear()
    assert not session.dirty and session.face_settings == {}
    assert session.params.seed == 2  # the parameters stay


def test_opening_photos_is_not_unsaved_work(tmp_path):
    """D15 (issue 12): merely opening two photos leaves the session clean; replacing a
    photo of an open project changes the project."""
    session = Session()
    image = np.zeros((4, 4, 3), np.uint8)
    session.set_photo("original", tmp_path / "a.png", image)
    session.set_photo("edited", tmp_path / "b.png", image)
    assert session.has_photos and not session.dirty
    session.project_path = tmp_path / "job.editedid"
    session.set_photo("edited", tmp_path / "c.png", image)
    assert session.dirty


def test_settings_model_reads_writes_and_falls_back():
    store = MemoryStore()
    store.setValue("model/device", "tpu")
    store.setValue("save/jpeg_quality", "12")
    store.setValue("paths/recent", "/a.png")
    settings = SettingsModel(store)
    assert settings.device == "auto" and settings.jpeg_quality == 50
    assert settings.recent_files == ["/a.png"]
    settings.precision = "fp16"
    assert store.value("model/precision") == "fp16"
    assert SettingsModel(store).precision == "fp16"


def test_bound_method_listeners_do_not_keep_their_object_alive():
    """A listener object is freed by reference counting, never left to the cyclic GC
    (which could free a QObject inside a Qt call holding Qt's connection mutex)."""
    import gc
    import weakref

    class Listener:
        def __init__(self, model):
            self.model = model  # owns the model it listens to: the cycle of MaskDocument
            self.seen = []
            model.params_changed.connect(self.on_params)

        def on_params(self, value):
            self.seen.append(value)

    gc.disable()
    try:
        session = Session()
        listener = Listener(session)
        session.params = EditedIDParams(steps=8, dpm_range=(6, 8))
        assert len(listener.seen) == 1
        gone = weakref.ref(listener)
        del listener
        assert gone() is None  # no gc.collect() needed
        session.params = EditedIDParams(steps=9, dpm_range=(7, 9))  # a dead listener is skipped
        assert len(session.params_changed) == 0
        kept = []
        session.params_changed.connect(lambda value: kept.append(value))  # plain callables stay
        session.params = EditedIDParams()
        assert len(kept) == 1
    finally:
        gc.enable()


def test_mask_document_is_freed_without_the_cyclic_gc(qtbot):
    import gc
    import weakref

    from editedid_desktop.mask_document import MaskDocument

    gc.disable()
    try:
        doc = MaskDocument()
        gone = weakref.ref(doc)
        del doc
        assert gone() is None
    finally:
        gc.enable()

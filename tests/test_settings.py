"""Settings: typed QSettings values on an isolated INI file, surviving a window restart."""

from __future__ import annotations

from editedid_desktop.settings import MAX_RECENT, Settings
from engine.models.spec import ModelSpec


def test_defaults_and_round_trip(tmp_path):
    from engine.models.loading import DEFAULT_SD_MODEL

    ini = tmp_path / "settings.ini"
    settings = Settings.from_ini(ini)
    assert settings.model_source == DEFAULT_SD_MODEL
    assert (settings.device, settings.precision, settings.low_vram) == ("auto", "auto", False)
    assert settings.face_backend == "auto"
    assert settings.recent_files == []
    # "auto" device and precision: the spec leaves both to the engine
    assert settings.model_spec() == ModelSpec(
        source=DEFAULT_SD_MODEL, models_dir=str(settings.resolved_models_dir())
    )

    settings.model_source = "/models/my-sd"
    settings.device = "cpu"
    settings.precision = "fp16"
    settings.low_vram = True
    settings.face_backend = "dlib"
    settings.models_dir = str(tmp_path / "models")
    settings.set_last_folder("open", tmp_path)
    settings.jpeg_quality = 88
    settings.sync()

    again = Settings.from_ini(ini)
    assert again.model_source == "/models/my-sd"
    assert (again.device, again.precision, again.low_vram) == ("cpu", "fp16", True)
    assert again.face_backend == "dlib"
    assert again.resolved_models_dir() == tmp_path / "models"
    assert again.last_folder("open") == str(tmp_path)
    assert again.jpeg_quality == 88
    spec = again.model_spec()  # what the worker loads: the settings, as a ModelSpec
    assert spec == ModelSpec(source="/models/my-sd", device="cpu", dtype="fp16",
                             low_vram=True, models_dir=str(tmp_path / "models"))  # fmt: skip


def test_bad_values_fall_back_to_defaults(tmp_path):
    ini = tmp_path / "settings.ini"
    ini.write_text("[model]\ndevice=tpu\nprecision=fp8\n[faces]\nbackend=magic\n")
    settings = Settings.from_ini(ini)
    assert (settings.device, settings.precision, settings.face_backend) == ("auto", "auto", "auto")


def test_recent_files_most_recent_first_and_capped(tmp_path):
    settings = Settings.from_ini(tmp_path / "settings.ini")
    for i in range(MAX_RECENT + 3):
        settings.add_recent_file(tmp_path / f"photo{i}.png")
    settings.add_recent_file(tmp_path / "photo5.png")
    recent = settings.recent_files
    assert len(recent) == MAX_RECENT
    assert recent[0].endswith("photo5.png")
    assert sum(r.endswith("photo5.png") for r in recent) == 1


def test_settings_persist_across_main_window_restart(qtbot, tmp_path):
    from editedid_desktop.main_window import MainWindow

    ini = tmp_path / "settings.ini"
    window = MainWindow(settings=Settings.from_ini(ini))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.resize(window.width(), 520)  # offscreen screens are narrow: vary the height
    qtbot.waitUntil(lambda: window.height() == 520, timeout=2000)
    window.faces_dock.hide()
    window.settings.add_recent_file(tmp_path / "a.editedid")
    window.settings.device = "cpu"
    window.close()

    reopened = MainWindow(settings=Settings.from_ini(ini))
    qtbot.addWidget(reopened)
    reopened.show()
    qtbot.waitExposed(reopened)
    assert reopened.settings.device == "cpu"
    assert reopened.height() == 520
    assert not reopened.faces_dock.isVisible()
    recent = [a.text() for a in reopened.recent_menu.actions()]
    assert "a.editedid" in recent
    reopened.close()


def test_recent_pairs_keep_their_roles_and_survive_damage(tmp_path):
    """D3 (issue 12): recent photos are pairs with roles; a damaged entry is dropped."""
    from editedid_desktop.model.settings import MemoryStore, SettingsModel

    store = MemoryStore()
    model = SettingsModel(store)
    model.add_recent_pair(tmp_path / "b.png", tmp_path / "a.png")
    model.add_recent_pair(tmp_path / "c.png", tmp_path / "d.png")
    model.add_recent_pair(tmp_path / "b.png", tmp_path / "a.png")  # again: moves to the top
    first = (str((tmp_path / "b.png").resolve()), str((tmp_path / "a.png").resolve()))
    assert model.recent_pairs[0] == first and len(model.recent_pairs) == 2
    store.values["paths/recent_pairs"].append("{not json")
    assert SettingsModel(store).recent_pairs[0] == first
    assert len(SettingsModel(store).recent_pairs) == 2
    model.clear_recent_files()
    assert SettingsModel(store).recent_pairs == []


def test_fresh_settings_name_the_model_and_folder_without_loading_torch(tmp_path):
    # The window paints before the engine loads; on the very first start the settings
    # must name the default model and the models folder without importing torch.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from editedid_desktop.settings import Settings\n"
        f"s = Settings.from_ini({str(tmp_path / 'settings.ini')!r})\n"
        "print(s.model_source, s.resolved_models_dir(), s.model_spec().source)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith("CompVis/stable-diffusion-v1-4 ")
    assert lines[0].endswith(" CompVis/stable-diffusion-v1-4")  # the spec names it too
    assert lines[1] == "False"

"""The app's document model, without Qt (napari's components, krita-ai-diffusion's model/).

observable  Observable, Property, Event: declared state that notifies only on change
draft       Draft: field-by-field editing of a frozen dataclass, with validation errors
session     Session, FaceSettings: photos, analysis, per-face settings, params, results
masks       MaskModel and its undo atoms (MaskEdit, PatchAtom, InvertAtom)
project     the .editedid project file: generic (de)serialisation of the model
settings    SettingsModel: typed preferences over any key-value store

No module here imports PySide6 (import-linter contract "desktop-model-without-qt").
"""

"""The inversion cache: per-face inversion and null-text results (LRU, on the CPU) and
the branch records of the last restore call's faces, so a re-run with new masks or
overlap weights only repeats the entanglement stage; face_cache_key says which inputs
and settings a cached face stands for, default_cache is the one a model keeps.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from engine.diffusion.branch_attention import BranchRecord, RecordSpec
from engine.diffusion.face_pairs import FacePair
from engine.diffusion.inversion import AlignedTrajectories
from engine.diffusion.nulltext import NullTextResult
from engine.params import EditedIDParams


@dataclass
class CacheEntry:
    trajectories: AlignedTrajectories
    nulltext: NullTextResult


class InversionCache:
    """LRU cache of per-face inversion + null-text results, kept on the CPU; and the
    branch records of the last restore call's faces (where they were recorded: GPU or
    host memory), so a re-run of those faces with new masks or overlap weights - the
    app's loop - replays them instead of running three branches. A call for other faces,
    or with settings the records do not fit, drops them first (their memory freed)."""

    def __init__(self, max_faces: int = 32) -> None:
        self.max_faces = max_faces
        self._items: OrderedDict[str, CacheEntry] = OrderedDict()
        self._records: dict[str, tuple[BranchRecord, int]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> CacheEntry | None:
        entry = self._items.get(key)
        if entry is not None:
            self._items.move_to_end(key)
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        self._items[key] = entry
        self._items.move_to_end(key)
        while len(self._items) > self.max_faces:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()
        self._records.clear()

    def records_for(
        self, keys: set[str], spec: RecordSpec | None, place: str
    ) -> dict[str, tuple[BranchRecord, int]]:
        """The kept records of faces `keys` that fit `spec` and the placement setting
        (LowMemory.branch_record: "host" takes only host-memory records); every other
        record is dropped."""
        self._records = {
            key: (record, slot)
            for key, (record, slot) in self._records.items()
            if key in keys
            and spec is not None
            and record.spec == spec
            and record.valid
            and (place != "host" or record.home.type == "cpu")
        }
        return dict(self._records)

    def keep_records(self, records: dict[str, tuple[BranchRecord, int]]) -> None:
        """Keep these faces' records (face key -> record, slot) until the next call."""
        self._records = dict(records)


def default_cache(model) -> InversionCache:
    cache = getattr(model, "_editedid_cache", None)
    if cache is None:
        cache = InversionCache()
        model._editedid_cache = cache
    return cache


def face_cache_key(model, pair: FacePair, params: EditedIDParams) -> str:
    digest = hashlib.sha256()
    for image in (pair.original, pair.edited):
        digest.update(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    digest.update(str(getattr(model, "fingerprint", id(model))).encode())
    digest.update(str(model.dtype).encode())
    digest.update(json.dumps(params.inversion_key(), sort_keys=True).encode())
    return digest.hexdigest()

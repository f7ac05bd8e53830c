"""engine.faces.detection: dlib on real photos, pairing, insightface wiring, model download."""

from __future__ import annotations

import hashlib
import io
import stat
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.errors import Cancelled, DownloadError, InputError, ModelNotFoundError
from engine.faces import detection as faces
from engine.faces import dlib_backend
from engine.faces.types import Face, FaceAnalyzer
from tests.helpers import sample_photo

PHOTOS = ("grace_hopper", "astronaut", "t1")
EXPECTED_COUNTS = {"grace_hopper": 1, "astronaut": 1, "t1": 6}


def load_rgb(name: str) -> np.ndarray:
    return np.asarray(Image.open(sample_photo(name)).convert("RGB"))


# ---------------------------------------------------------------------------------------
# Fixtures: every photo is detected once per module (HOG + embeddings cost ~0.7 s on t1)
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: load_rgb(name) for name in PHOTOS}


@pytest.fixture(scope="module")
def dlib_analyzer() -> faces.DlibAnalyzer:
    return faces.DlibAnalyzer()


@pytest.fixture(scope="module")
def detections(photos, dlib_analyzer) -> dict[str, tuple[list[Face], float]]:
    out = {}
    for name, image in photos.items():
        start = time.perf_counter()
        found = dlib_analyzer.detect(image)
        out[name] = (found, time.perf_counter() - start)
    return out


# The "edited" t1: scaled by 0.8, shifted and cropped (the photo transform to recover).
EDIT_MATRIX = np.array([[0.8, 0.0, 30.0], [0.0, 0.8, -20.0]])


@pytest.fixture(scope="module")
def scaled_t1(photos, dlib_analyzer) -> tuple[np.ndarray, list[Face]]:
    t1 = photos["t1"]
    h, w = t1.shape[:2]
    edited = cv2.warpAffine(t1, EDIT_MATRIX, (int(w * 0.8) + 10, int(h * 0.8) - 40))
    return edited, dlib_analyzer.detect(edited)


@pytest.fixture(scope="module")
def t1_two_removed(photos, detections, dlib_analyzer):
    """t1 with one face painted over and the rightmost face cropped away."""
    t1_faces = detections["t1"][0]
    by_x = sorted(range(len(t1_faces)), key=lambda i: t1_faces[i].center[0])
    cropped_away, painted = by_x[-1], by_x[2]
    right_edge = int(t1_faces[cropped_away].box[0]) - 10
    edited = photos["t1"][:, :right_edge].copy()
    x0, y0, x1, y1 = t1_faces[painted].box.astype(int)
    pad = int(0.25 * (x1 - x0))
    edited[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad] = (128, 110, 100)
    return edited, dlib_analyzer.detect(edited), {cropped_away, painted}


def expected_pairs(edited_faces, original_faces, matrix_original_to_edited):
    """Ground truth: each original face centre mapped into the edited photo -> nearest face."""
    pairs = []
    for j, face_o in enumerate(original_faces):
        mapped = matrix_original_to_edited[:, :2] @ face_o.center + matrix_original_to_edited[:, 2]
        dists = [np.linalg.norm(f.center - mapped) for f in edited_faces]
        i = int(np.argmin(dists))
        if dists[i] < 0.3 * face_o.size:
            pairs.append((i, j))
    return sorted(pairs)


# ---------------------------------------------------------------------------------------
# dlib detection and landmarks
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PHOTOS)
def test_dlib_detection_counts(detections, name):
    found, seconds = detections[name]
    print(f"{name}: {len(found)} faces in {seconds:.2f} s (HOG + 68 points + embeddings)")
    assert len(found) == EXPECTED_COUNTS[name]
    for face in found:
        assert face.backend == "dlib"
        assert face.embedding is not None and face.embedding.shape == (128,)
        assert face.landmarks is not None and face.landmarks.shape == (68, 2)
    sizes = [f.size for f in found]
    assert sizes == sorted(sizes, reverse=True)


def test_dlib_analyzer_follows_the_protocol(dlib_analyzer):
    assert isinstance(dlib_analyzer, FaceAnalyzer)
    assert (dlib_analyzer.name, dlib_analyzer.embedding_metric) == ("dlib", "l2")
    assert dlib_analyzer.same_person_threshold == 0.6


def test_astronaut_upsample_one_adds_a_false_face(photos):
    """Why the default upsample is 0 for photos of this size (measured: 2 faces at 1)."""
    found = faces.DlibAnalyzer(upsample=1, with_embeddings=False).detect(photos["astronaut"])
    assert len(found) == 2
    assert min(f.score for f in found) < 0.3  # the extra one is a weak detection


def test_small_photo_is_upsampled(photos):
    small = cv2.resize(photos["grace_hopper"], (170, 200), interpolation=cv2.INTER_AREA)
    found = faces.DlibAnalyzer(with_embeddings=False).detect(small)
    assert len(found) == 1
    assert (
        faces.DlibAnalyzer(upsample=0, with_embeddings=False).detect(cv2.resize(small, (120, 141)))
        == []
    )


def test_huge_photo_is_searched_downscaled_and_fitted_full_size(photos, detections, dlib_analyzer):
    import cv2

    big = cv2.resize(photos["grace_hopper"], None, fx=6, fy=6, interpolation=cv2.INTER_CUBIC)
    assert max(big.shape[:2]) > faces.DETECT_MAX_SIDE
    found = dlib_analyzer.detect(big)
    assert len(found) == 1
    reference = detections["grace_hopper"][0][0]
    # HOG boxes are coarse (the search scale differs); the landmarks are fitted full size.
    np.testing.assert_allclose(found[0].center, reference.center * 6, atol=0.15 * found[0].size)
    np.testing.assert_allclose(
        found[0].landmarks5, reference.landmarks5 * 6, atol=0.06 * found[0].size
    )
    assert float(np.linalg.norm(found[0].embedding - reference.embedding)) < 0.2


def test_landmarks5_order(detections):
    for name in PHOTOS:
        for face in detections[name][0]:
            left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks5
            assert left_eye[0] < right_eye[0], name
            assert mouth_left[0] < mouth_right[0], name
            assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
            x0, y0, x1, y1 = face.box
            margin = 0.2 * face.size
            assert np.all(face.landmarks5[:, 0] > x0 - margin)
            assert np.all(face.landmarks5[:, 0] < x1 + margin)
            assert np.all(face.landmarks5[:, 1] > y0 - margin)
            assert np.all(face.landmarks5[:, 1] < y1 + margin)


def test_embed_matches_detect(photos, detections, dlib_analyzer):
    face = detections["grace_hopper"][0][0]
    again = dlib_analyzer.embed(photos["grace_hopper"], face)
    assert np.linalg.norm(again - face.embedding) < 1e-4


def test_bad_images_are_refused(dlib_analyzer):
    with pytest.raises(InputError, match="8-bit"):
        dlib_analyzer.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(InputError, match="shape"):
        dlib_analyzer.detect(np.zeros((64, 64, 2), np.uint8))
    assert dlib_analyzer.detect(np.full((64, 64), 127, np.uint8)) == []


def test_dlib_models_are_found_without_importing_the_package():
    folder = faces.dlib_models_dir()
    for filename in faces.DLIB_FILES.values():
        assert (folder / filename).is_file()
    assert faces.available_backends()["dlib"] == "ready"


# ---------------------------------------------------------------------------------------
# Pairing
# ---------------------------------------------------------------------------------------
def test_estimate_photo_transform_recovers_scale_shift_crop(photos, scaled_t1):
    edited, _ = scaled_t1
    start = time.perf_counter()
    matrix = faces.estimate_photo_transform(edited, photos["t1"])
    print(f"transform estimated in {time.perf_counter() - start:.2f} s")
    assert matrix is not None
    expected = cv2.invertAffineTransform(EDIT_MATRIX)
    np.testing.assert_allclose(matrix[:, :2], expected[:, :2], atol=0.01)
    np.testing.assert_allclose(matrix[:, 2], expected[:, 2], atol=3.0)


def test_estimate_photo_transform_gives_none_for_unrelated_photos(photos):
    noise = np.random.default_rng(0).integers(0, 256, (400, 500, 3), dtype=np.uint8)
    assert faces.estimate_photo_transform(noise, photos["t1"]) is None
    assert (
        faces.estimate_photo_transform(np.full((300, 300, 3), 90, np.uint8), photos["t1"]) is None
    )


def test_pair_all_six_faces_after_shift_scale_crop(photos, detections, scaled_t1):
    edited, edited_faces = scaled_t1
    original_faces = detections["t1"][0]
    assert len(edited_faces) == 6
    pairing = faces.pair_faces(edited_faces, original_faces, edited, photos["t1"])
    assert pairing.pairs == expected_pairs(edited_faces, original_faces, EDIT_MATRIX)
    assert len(pairing.pairs) == 6
    assert pairing.unpaired_edited == [] and pairing.unpaired_original == []
    assert pairing.transform is not None
    chosen = [pairing.costs[p] for p in pairing.pairs]
    others = [c for key, c in pairing.costs.items() if key not in pairing.pairs]
    print(f"pair costs {np.round(chosen, 3)}; best wrong pair {min(others):.2f}")
    assert max(chosen) < 0.5 < 2.0 < min(others)


def test_pairing_without_transform_uses_relative_positions(photos, detections):
    t1 = photos["t1"]
    original_faces = detections["t1"][0]
    # A pure resize keeps relative positions; move the edited faces as the resize would.
    edited = cv2.resize(t1, (640, 443), interpolation=cv2.INTER_AREA)
    sx, sy = 640 / t1.shape[1], 443 / t1.shape[0]
    moved = [
        Face(box=f.box * [sx, sy, sx, sy], landmarks5=f.landmarks5 * [sx, sy], backend="dlib")
        for f in original_faces[::-1]
    ]
    pairing = faces.pair_faces(moved, original_faces, edited, t1, estimate=False)
    assert pairing.transform is None
    n = len(original_faces)
    assert pairing.pairs == [(i, n - 1 - i) for i in range(n)]


def test_pairing_reports_faces_removed_from_the_edit(photos, detections, t1_two_removed):
    edited, edited_faces, removed = t1_two_removed
    original_faces = detections["t1"][0]
    assert len(edited_faces) == 4
    pairing = faces.pair_faces(edited_faces, original_faces, edited, photos["t1"])
    assert len(pairing.pairs) == 4
    assert pairing.unpaired_edited == []
    assert set(pairing.unpaired_original) == removed
    assert pairing.pairs == expected_pairs(edited_faces, original_faces, np.eye(2, 3))

    # The other way round: faces of the "edited" photo with no partner are reported too.
    back = faces.pair_faces(original_faces, edited_faces, photos["t1"], edited)
    assert set(back.unpaired_edited) == removed
    assert back.unpaired_original == []


def test_overrides_win(photos, detections, scaled_t1):
    edited, edited_faces = scaled_t1
    original_faces = detections["t1"][0]
    auto = dict(faces.pair_faces(edited_faces, original_faces, edited, photos["t1"]).pairs)
    transform = faces.estimate_photo_transform(edited, photos["t1"])
    wrong = auto[1]  # give edited face 0 the original of face 1, and drop face 1
    pairing = faces.pair_faces(
        edited_faces,
        original_faces,
        edited,
        photos["t1"],
        transform=transform,
        overrides={0: wrong, 1: None},
    )
    pairs = dict(pairing.pairs)
    assert pairs[0] == wrong
    assert pairing.unpaired_edited == [1] and pairs.get(1) is None
    assert pairing.unpaired_original == [auto[0]]
    for e in range(2, 6):
        assert pairs[e] == auto[e]

    with pytest.raises(InputError, match="edited photo"):
        faces.pair_faces(edited_faces, original_faces, edited, photos["t1"], overrides={9: 0})
    with pytest.raises(InputError, match="same original"):
        faces.pair_faces(
            edited_faces,
            original_faces,
            edited,
            photos["t1"],
            transform=transform,
            overrides={0: 1, 2: 1},
        )


def test_single_faces_always_pair(photos, detections):
    grace = detections["grace_hopper"][0]
    astronaut = detections["astronaut"][0]
    pairing = faces.pair_faces(grace, astronaut, photos["grace_hopper"], photos["astronaut"])
    assert pairing.pairs == [(0, 0)]


def test_identity_breaks_a_geometric_tie():
    rng = np.random.default_rng(1)
    emb_a, emb_b = rng.normal(size=128) * 0.05, rng.normal(size=128) * 0.05
    box = np.array([100.0, 100.0, 200.0, 200.0])
    pts = np.zeros((5, 2))
    originals = [
        Face(box=box, landmarks5=pts, embedding=emb_a, backend="dlib"),
        Face(box=box + 5, landmarks5=pts, embedding=emb_b, backend="dlib"),
    ]
    edited = [Face(box=box + 2.5, landmarks5=pts, embedding=emb_b + 0.001, backend="dlib")]
    image = np.zeros((400, 400, 3), np.uint8)
    pairing = faces.pair_faces(edited, originals, image, image, transform=np.eye(2, 3))
    assert pairing.pairs == [(0, 1)]


# ---------------------------------------------------------------------------------------
# insightface wiring with generated tiny ONNX models
# ---------------------------------------------------------------------------------------
FAKE_BOX = (200.0, 150.0, 360.0, 350.0)  # in the detector's 640x640 input
FAKE_KPS = ((240.0, 230.0), (320.0, 230.0), (280.0, 280.0), (250.0, 320.0), (310.0, 320.0))


def _save_model(nodes, inputs, outputs, initializers, path):
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def write_fake_scrfd(path, size=640):
    """A 'detector' with SCRFD's 9 outputs that always finds one face at FAKE_BOX."""
    from onnx import TensorProto, helper, numpy_helper

    anchors, strides = 2, (8, 16, 32)
    outputs = {}
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride in strides:
            outputs[(kind, stride)] = np.zeros(((size // stride) ** 2 * anchors, width), np.float32)
    stride = 32
    cx, cy = (FAKE_BOX[0] + FAKE_BOX[2]) / 2, (FAKE_BOX[1] + FAKE_BOX[3]) / 2
    col, row = round(cx / stride), round(cy / stride)
    ax, ay = col * stride, row * stride
    index = (row * (size // stride) + col) * anchors
    outputs[("score", stride)][index] = 0.9
    x0, y0, x1, y1 = FAKE_BOX
    outputs[("bbox", stride)][index] = np.array([ax - x0, ay - y0, x1 - ax, y1 - ay]) / stride
    outputs[("kps", stride)][index] = ((np.array(FAKE_KPS) - [ax, ay]) / stride).ravel()

    nodes = [
        helper.make_node("ReduceMean", ["input.1"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for k, key in enumerate([(kind, s) for kind in ("score", "bbox", "kps") for s in strides]):
        array = outputs[key]
        inits.append(numpy_helper.from_array(array, f"const{k}"))
        nodes.append(helper.make_node("Add", [f"const{k}", "nothing"], [f"out{k}"]))
        outs.append(helper.make_tensor_value_info(f"out{k}", TensorProto.FLOAT, list(array.shape)))
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])
    _save_model(nodes, [inp], outs, inits, path)


def write_fake_projection(path, side, out_dim, pool, seed):
    """Random projection of a pooled NCHW image: ArcFace-shaped (112 -> 512) or 106 points."""
    from onnx import TensorProto, helper, numpy_helper

    cells = side // pool
    weight = np.random.default_rng(seed).standard_normal((3 * cells * cells, out_dim))
    nodes = [
        helper.make_node(
            "AveragePool", ["input.1"], ["pooled"], kernel_shape=[pool, pool], strides=[pool, pool]
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weight"], ["output"]),
    ]
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, side, side])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", out_dim])
    init = [numpy_helper.from_array(weight.astype(np.float32) * 0.01, "weight")]
    _save_model(nodes, [inp], [out], init, path)


@pytest.fixture(scope="module")
def fake_models_dir(tmp_path_factory):
    """<models_dir>/insightface/models/buffalo_l with a fake detector, ArcFace and 106 points."""
    models_dir = tmp_path_factory.mktemp("face-models")
    pack = faces.insightface_pack_dir(models_dir)
    pack.mkdir(parents=True)
    write_fake_scrfd(pack / "det_10g.onnx")
    write_fake_projection(pack / "w600k_r50.onnx", 112, 512, 8, seed=0)
    write_fake_projection(pack / "2d106det.onnx", 192, 212, 16, seed=1)
    return models_dir


def test_insightface_wiring(fake_models_dir, photos):
    analyzer = faces.get_analyzer("auto", models_dir=fake_models_dir)
    assert isinstance(analyzer, faces.InsightFaceAnalyzer)
    assert isinstance(analyzer, FaceAnalyzer)
    assert (analyzer.embedding_metric, analyzer.same_person_threshold) == ("cosine", 0.28)
    assert analyzer.tasks == ["detection", "landmark_2d_106", "recognition"]

    image = photos["astronaut"]  # 512x512: the detector saw it scaled by 640/512
    found = analyzer.detect(image)
    assert len(found) == 1
    face = found[0]
    np.testing.assert_allclose(face.box, np.array(FAKE_BOX) * 0.8, atol=0.5)
    np.testing.assert_allclose(face.landmarks5, np.array(FAKE_KPS) * 0.8, atol=0.5)
    assert face.backend == "insightface" and face.score == pytest.approx(0.9, abs=1e-4)
    assert face.landmarks is not None and face.landmarks.shape == (106, 2)
    assert face.embedding.shape == (512,)
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)

    # embed() aligns from the given landmarks with the same ArcFace model.
    np.testing.assert_allclose(analyzer.embed(image, face), face.embedding, atol=1e-5)
    moved = Face(box=face.box + 100, landmarks5=face.landmarks5 + 100)
    assert float(analyzer.embed(image, moved) @ face.embedding) < 0.999
    status = faces.available_backends(fake_models_dir)
    assert status == {"insightface": "ready", "dlib": "ready"}


def test_insightface_root_layout_and_named_folder(fake_models_dir):
    root = fake_models_dir / "insightface"
    assert (
        faces.resolve_insightface_dir(root) == faces.insightface_pack_dir(fake_models_dir).resolve()
    )
    pack = faces.insightface_pack_dir(fake_models_dir)
    assert faces.InsightFaceAnalyzer(pack).model_dir == pack.resolve()


def test_insightface_missing_or_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(ModelNotFoundError, match="editedid-cli models download faces"):
        faces.InsightFaceAnalyzer(models_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no .onnx files"):
        faces.InsightFaceAnalyzer(tmp_path / "empty")
    with pytest.raises(ModelNotFoundError, match="buffalo_l"):
        faces.get_analyzer("insightface", models_dir=tmp_path)
    auto = faces.get_analyzer("auto", models_dir=tmp_path, upsample=1, det_size=(320, 320))
    assert isinstance(auto, faces.DlibAnalyzer) and auto.upsample == 1
    assert "download" in faces.available_backends(tmp_path)["insightface"]
    with pytest.raises(InputError, match="Unknown face backend"):
        faces.get_analyzer("cnn")


def test_insightface_folder_without_detector(tmp_path):
    write_fake_projection(tmp_path / "w600k_r50.onnx", 112, 512, 8, seed=0)
    analyzer = faces.InsightFaceAnalyzer(tmp_path)
    with pytest.raises(ModelNotFoundError, match="no face detector"):
        analyzer.detect(np.zeros((64, 64, 3), np.uint8))


# ---------------------------------------------------------------------------------------
# Download of buffalo_l from a local HTTP server
# ---------------------------------------------------------------------------------------
def make_zip(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


PAYLOAD = np.random.default_rng(3).integers(0, 256, 3 * (1 << 20) + 1234, np.uint8).tobytes()
GOOD_ZIP = make_zip({"det_10g.onnx": PAYLOAD, "w600k_r50.onnx": b"arcface" * 100})


class FileServer:
    """Serves bytes on 127.0.0.1 with Range support; /cut/... stops halfway through."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server API
                path = self.path
                server.requests.append((path, self.headers.get("Range")))
                cut = path.startswith("/cut/")
                no_range = path.startswith("/norange/")
                data = server.files.get(path.split("/")[-1])
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                header = self.headers.get("Range")
                if header and not no_range:
                    start = int(header.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body[: len(body) // 2] if cut else body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client cancelled
                    pass
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str, prefix: str = "") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{prefix}/{name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    files = {
        "buffalo_l.zip": GOOD_ZIP,
        "slip.zip": make_zip({"../evil.onnx": b"x"}),
        "absolute.zip": make_zip({"/tmp/evil.onnx": b"x"}),
        "link.zip": make_zip({"ok.onnx": b"x"}, links={"evil.onnx": "/etc/passwd"}),
        "nomodels.zip": make_zip({"readme.txt": b"hello"}),
        "nested.zip": make_zip({"buffalo_l/det_10g.onnx": b"d", "buffalo_l/w600k_r50.onnx": b"r"}),
    }
    with FileServer(files) as running:
        yield running


GOOD_SHA = hashlib.sha256(GOOD_ZIP).hexdigest()


def test_download_with_progress_and_sha256(tmp_path, server):
    calls = []
    pack = faces.download_face_models(
        tmp_path,
        progress=lambda done, total, label: calls.append((done, total, label)),
        url=server.url("buffalo_l.zip"),
        sha256=GOOD_SHA,
    )
    assert pack == faces.insightface_pack_dir(tmp_path)
    assert (pack / "det_10g.onnx").read_bytes() == PAYLOAD
    assert sorted(p.name for p in pack.glob("*.onnx")) == ["det_10g.onnx", "w600k_r50.onnx"]
    downloads = [c for c in calls if c[2] == "buffalo_l.zip"]
    assert downloads[0][0] == 0 and downloads[-1][:2] == (len(GOOD_ZIP), len(GOOD_ZIP))
    assert [d for d, _, _ in downloads] == sorted(d for d, _, _ in downloads)
    assert len(downloads) >= 4  # streamed in 1 MiB chunks
    assert not list((tmp_path / "insightface" / "downloads").glob("*.part"))
    assert not [p for p in pack.parent.iterdir() if p.name.startswith(".")]  # no temp left
    # Already there: no network at all (the URL points nowhere).
    again = faces.download_face_models(tmp_path, url="http://127.0.0.1:9/none.zip")
    assert again == pack
    assert faces.available_backends(tmp_path)["insightface"] == "ready"


def test_download_resumes_an_interrupted_file(tmp_path, server):
    with pytest.raises(DownloadError, match="run it again to resume"):
        faces.download_face_models(tmp_path, url=server.url("buffalo_l.zip", "/cut"))
    part = tmp_path / "insightface" / "downloads" / "buffalo_l.zip.part"
    assert 0 < part.stat().st_size < len(GOOD_ZIP)
    kept = part.stat().st_size
    calls = []
    pack = faces.download_face_models(
        tmp_path,
        progress=lambda done, total, label: calls.append(done),
        url=server.url("buffalo_l.zip"),
        sha256=GOOD_SHA,
    )
    assert server.requests[-1] == ("/buffalo_l.zip", f"bytes={kept}-")
    assert calls[0] == kept
    assert (pack / "det_10g.onnx").read_bytes() == PAYLOAD


def test_download_restarts_when_the_server_ignores_range(tmp_path, server):
    part = tmp_path / "insightface" / "downloads" / "buffalo_l.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes")
    pack = faces.download_face_models(
        tmp_path, url=server.url("buffalo_l.zip", "/norange"), sha256=GOOD_SHA
    )
    assert (pack / "det_10g.onnx").read_bytes() == PAYLOAD


def test_download_finishes_a_complete_part_file(tmp_path, server):
    part = tmp_path / "insightface" / "downloads" / "buffalo_l.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(GOOD_ZIP)  # e.g. the app closed while unpacking
    pack = faces.download_face_models(tmp_path, url=server.url("buffalo_l.zip"), sha256=GOOD_SHA)
    assert server.requests[-1][1] == f"bytes={len(GOOD_ZIP)}-"  # answered 416: nothing left
    assert (pack / "det_10g.onnx").read_bytes() == PAYLOAD


def test_download_hash_mismatch_deletes_the_file(tmp_path, server):
    with pytest.raises(DownloadError, match="did not verify"):
        faces.download_face_models(tmp_path, url=server.url("buffalo_l.zip"), sha256="0" * 64)
    assert not list((tmp_path / "insightface" / "downloads").glob("*"))
    assert not faces.insightface_pack_dir(tmp_path).exists()


@pytest.mark.parametrize("name", ["slip.zip", "absolute.zip", "link.zip"])
def test_download_refuses_unsafe_archives(tmp_path, server, name):
    models_dir = tmp_path / "models"
    with pytest.raises(DownloadError, match="Refusing to unpack"):
        faces.download_face_models(models_dir, url=server.url(name), sha256=None)
    assert not (tmp_path / "evil.onnx").exists()
    assert not (models_dir / "insightface" / "evil.onnx").exists()
    assert not faces.insightface_pack_dir(models_dir).exists()
    assert not [p for p in (models_dir / "insightface" / "models").iterdir()]


def test_download_checks_the_pack_and_accepts_a_nested_folder(tmp_path, server):
    with pytest.raises(DownloadError, match="no .onnx"):
        faces.download_face_models(tmp_path / "a", url=server.url("nomodels.zip"))
    pack = faces.download_face_models(tmp_path / "b", url=server.url("nested.zip"))
    assert (pack / "det_10g.onnx").read_bytes() == b"d"


def test_download_cancel_keeps_the_part_file(tmp_path, server):
    with pytest.raises(Cancelled):
        faces.download_face_models(tmp_path, url=server.url("buffalo_l.zip"), cancel=lambda: True)
    assert not faces.insightface_pack_dir(tmp_path).exists()
    assert (tmp_path / "insightface" / "downloads" / "buffalo_l.zip.part").exists()
    pack = faces.download_face_models(tmp_path, url=server.url("buffalo_l.zip"), sha256=GOOD_SHA)
    assert (pack / "w600k_r50.onnx").exists()


def test_download_network_error_is_clear(tmp_path):
    with pytest.raises(DownloadError, match="Could not download"):
        faces.download_face_models(tmp_path, url="http://127.0.0.1:9/buffalo_l.zip", timeout=5)


def test_huge_photo_fallback_search_is_bounded(monkeypatch):
    """Nothing found on the reduced copy: the second search is bounded, never full size."""
    searched: list[tuple[int, ...]] = []

    class Detector:
        def run(self, image, upsample, threshold):
            searched.append(image.shape)
            return [], [], []

    monkeypatch.setattr(dlib_backend, "_dlib_models", lambda: {"detector": Detector()})
    big = np.zeros((1000, faces.DETECT_FALLBACK_MAX_SIDE + 1000, 3), np.uint8)
    assert faces.DlibAnalyzer(with_embeddings=False).detect(big) == []
    assert len(searched) == 2 and max(searched[0][:2]) <= faces.DETECT_MAX_SIDE
    assert max(max(shape[:2]) for shape in searched) <= faces.DETECT_FALLBACK_MAX_SIDE


@pytest.mark.parametrize("shape", [(8, 100000, 3), (100000, 8, 3)])
def test_extreme_strips_give_no_faces_not_a_cv2_error(dlib_analyzer, shape):
    assert dlib_analyzer.detect(np.full(shape, 127, np.uint8)) == []

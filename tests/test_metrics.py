"""engine.faces.identity: identity similarity on real photos (dlib), display score and PSNR."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from engine.errors import InputError
from engine.faces import detection as faces
from engine.faces.identity import IdentityScore, id_similarity, psnr, score_embeddings
from engine.faces.types import Face
from tests.helpers import sample_photo


def load(name: str) -> Image.Image:
    return Image.open(sample_photo(name)).convert("RGB")


def jpeg(image: Image.Image, quality: int = 25) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def dlib_analyzer() -> faces.DlibAnalyzer:
    return faces.DlibAnalyzer()


@pytest.fixture(scope="module")
def grace() -> np.ndarray:
    return np.asarray(load("grace_hopper"))


SAME_FACE_VARIANTS = {
    "crop": lambda im: im.crop((60, 20, 480, 520)),
    "brightness": lambda im: ImageEnhance.Brightness(im).enhance(1.4),
    "jpeg": lambda im: jpeg(im, 25),
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(1.5)),
}


@pytest.mark.parametrize("variant", sorted(SAME_FACE_VARIANTS))
def test_same_face_is_the_same_person(grace, dlib_analyzer, variant):
    changed = np.asarray(SAME_FACE_VARIANTS[variant](load("grace_hopper")))
    score = id_similarity(grace, changed, dlib_analyzer)
    print(f"grace_hopper vs {variant}: L2 {score.value:.3f}")
    assert score.metric == "l2" and score.model == "dlib-resnet-v1" and score.threshold == 0.6
    assert score.value < 0.6 and score.same_person
    assert score.similarity > 0.5


def test_different_people_are_not(grace, dlib_analyzer):
    score = id_similarity(grace, np.asarray(load("astronaut")), dlib_analyzer)
    print(f"grace_hopper vs astronaut: L2 {score.value:.3f}")
    assert score.value > 0.6 and not score.same_person
    assert score.similarity < 0.5


def test_different_people_in_t1(dlib_analyzer):
    t1 = np.asarray(load("t1"))
    found = dlib_analyzer.detect(t1)
    distances = [
        float(np.linalg.norm(a.embedding - b.embedding))
        for i, a in enumerate(found)
        for b in found[i + 1 :]
    ]
    print(f"t1 pairs of different people: L2 {min(distances):.2f}-{max(distances):.2f}")
    assert len(distances) == 15 and min(distances) > 0.6


def test_largest_face_is_used(dlib_analyzer):
    """A photo with a small extra face still compares its dominant face."""
    grace_img = load("grace_hopper")
    other = load("astronaut").crop((120, 0, 340, 220))  # its face is ~90 px, grace's ~220
    canvas = Image.new("RGB", (800, 600), (40, 40, 40))
    canvas.paste(grace_img, (0, 0))
    canvas.paste(other, (560, 300))
    both = np.asarray(canvas)
    assert len(dlib_analyzer.detect(both)) == 2
    assert id_similarity(np.asarray(grace_img), both, dlib_analyzer).same_person


def test_no_face_names_the_image(grace, dlib_analyzer):
    blank = np.full((300, 300, 3), 200, np.uint8)
    with pytest.raises(InputError, match="second image"):
        id_similarity(grace, blank, dlib_analyzer)
    with pytest.raises(InputError, match="first image"):
        id_similarity(blank, grace, dlib_analyzer)


def test_default_analyzer_falls_back_to_dlib(grace, tmp_path):
    score = id_similarity(grace, grace, models_dir=tmp_path)  # no insightface models there
    assert score.model == "dlib-resnet-v1" and score.value == pytest.approx(0.0, abs=1e-6)
    assert score.similarity == pytest.approx(1.0)


class FixedAnalyzer:
    """An ArcFace-like backend with fixed embeddings, for the cosine branch."""

    name = "insightface"
    embedding_metric = "cosine"
    same_person_threshold = faces.ARCFACE_THRESHOLD

    def __init__(self, embeddings):
        self.embeddings = list(embeddings)

    def detect(self, image):
        return [
            Face(
                box=np.array([0.0, 0.0, 50.0, 50.0]),
                landmarks5=np.zeros((5, 2)),
                embedding=self.embeddings.pop(0),
                backend="insightface",
            )
        ]

    def embed(self, image, face):  # pragma: no cover - detect gives embeddings
        raise AssertionError


def test_cosine_branch_reports_arcface():
    image = np.zeros((64, 64, 3), np.uint8)
    a = np.zeros(512, np.float32)
    a[0] = 1.0
    b = np.zeros(512, np.float32)
    b[:2] = (0.5, np.sqrt(0.75))  # cosine 0.5
    score = id_similarity(image, image, FixedAnalyzer([a, b]))
    assert score.metric == "cosine" and score.model == "arcface-buffalo_l"
    assert score.value == pytest.approx(0.5, abs=1e-6) and score.same_person
    assert score.threshold == 0.28
    assert 0.5 < score.similarity < 1.0
    c = np.zeros(512, np.float32)
    c[1] = 1.0  # orthogonal: cosine 0
    score = id_similarity(image, image, FixedAnalyzer([a, c]))
    assert not score.same_person and score.similarity == pytest.approx(0.0)


def test_display_similarity_puts_the_threshold_at_one_half():
    one = np.ones(4)
    for metric, threshold, other in (
        ("l2", 0.6, one + np.array([0.6, 0, 0, 0])),
        ("cosine", 0.28, None),
    ):
        if other is None:  # build a vector at cosine exactly 0.28 to [1, 0, 0, 0]
            one = np.array([1.0, 0, 0, 0])
            other = np.array([0.28, np.sqrt(1 - 0.28**2), 0, 0])
        score = score_embeddings(one, other, metric, threshold, "m")
        assert isinstance(score, IdentityScore)
        assert score.similarity == pytest.approx(0.5, abs=1e-6)
        assert set(score.to_dict()) == {
            "value",
            "metric",
            "model",
            "threshold",
            "same_person",
            "similarity",
        }


def test_psnr():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert psnr(a, a) == float("inf")
    b = a.astype(np.int16)
    b[0, 0, 0] = (b[0, 0, 0] + 128) % 256
    expected = 10 * np.log10(255**2 / (128**2 / a.size))
    assert psnr(a, b.astype(np.uint8)) == pytest.approx(expected, rel=1e-9)
    noisy = cv2.add(a, np.full_like(a, 10))
    assert 20 < psnr(a, noisy) < 40
    with pytest.raises(InputError, match="8-bit"):
        psnr(a.astype(np.float32), a)
    with pytest.raises(InputError, match="one size"):
        psnr(a, a[:16])

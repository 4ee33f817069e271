"""docs/preprocessing.md: its worked examples are what the code computes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from fiqa_edge.assets import DEFAULT_BUNDLE, SAMPLES_DIR
from fiqa_edge.scorer import QualityScorer

DOC = (Path(__file__).parents[1] / "docs" / "preprocessing.md").read_text()


@pytest.fixture(scope="module")
def scorer():
    return QualityScorer.load(DEFAULT_BUNDLE)


def test_the_doc_describes_the_bundled_spec(scorer):
    spec = scorer.spec
    assert f'"input_size": {spec.input_size}, "resize": {spec.resize_to}' in DOC
    assert f'"mean": {list(spec.mean)}, "std": {list(spec.std)}'.replace("'", '"') in DOC


def test_synthetic_example_values(scorer):
    x, y = np.meshgrid(np.arange(6), np.arange(4))
    image = np.stack([40 * x, 60 * y, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    tensor = scorer.prepare(image)
    n = scorer.spec.input_size
    for (row, col) in [(0, 0), (n // 2, n // 2), (n - 1, n - 1)]:
        cells = " | ".join(f"{v:.6f}" for v in tensor[:, row, col])
        assert f"| ({row}, {col}) | {cells} |" in DOC
    assert f"**{scorer.score(image):.6f}**" in DOC


def test_face_example_values(scorer):
    path = SAMPLES_DIR / "Adrien_Brody" / "Adrien_Brody_0001.jpg"
    tensor = scorer.prepare(path)
    assert ", ".join(f"{v:.6f}" for v in tensor[:, 0, 0]) in DOC
    middle = scorer.spec.input_size // 2
    assert f"at `[c, {middle}, {middle}]`: " + ", ".join(f"{v:.6f}" for v in tensor[:, middle, middle]) in DOC
    assert f"{tensor.mean():.6f}" in DOC
    assert f"**{scorer.score(path):.6f}**" in DOC


def test_framing_examples_are_what_the_code_computes(scorer):
    """Worked examples 3 and 4: the alignment's pixel mapping and the group photo's faces and scores."""
    pytest.importorskip("ai_edge_litert", reason="face detection needs pip install 'fiqa-edge[detect]'")
    from PIL import Image

    from fiqa_edge.detect import FaceFinder
    from fiqa_edge.framing import LFW_FRAMING, align_face

    assert f'"eye_x": {LFW_FRAMING.eye_x:.4f}, "eye_y": {LFW_FRAMING.eye_y:.4f}' in DOC
    # the documented coefficients map the crop's eye places back onto the photo's eyes
    a, b, c, d, e, f = 0.686499, -0.228833, 55.022883, 0.228833, 0.686499, 18.661327
    for (u, v), want in (((103.25, 113.2), (100, 120)), ((146.95, 113.2), (130, 130))):
        assert np.allclose((a * u + b * v + c, d * u + e * v + f), want, atol=2e-3)
    photo = np.zeros((200, 200, 3), np.uint8)
    photo[100:140, 90:140] = 200  # a bright block around the eyes: the crop shows it where the mapping says
    crop = np.asarray(align_face(Image.fromarray(photo), (np.array([100.0, 120.0]), np.array([130.0, 130.0])),
                                 LFW_FRAMING))
    assert crop[113, 125].min() == 200 and crop[5, 5].max() == 0
    path = Path(__file__).parents[1] / "benchmarks" / "data" / "photos" / "Li_Zhaoxing_0007.jpg"
    image = Image.open(path).convert("RGB")
    detected = FaceFinder().detect(image)
    rows = re.findall(r"^\| (\d) \| ([\d., ]+) \| ([\d.]+) \| \(([\d.]+), ([\d.]+)\), \(([\d.]+), ([\d.]+)\) \| ([\d.]+) \|$",
                      DOC, flags=re.MULTILINE)
    from fiqa_edge.faces import FaceScorer

    results = FaceScorer(scorer).score(image)
    assert len(rows) == len(results) == len(detected) == 3
    for row, result, face in zip(rows, results, detected):  # detector arithmetic may differ in the last digits
        assert int(row[0]) == result.face
        assert np.allclose([float(v) for v in row[1].split(",")], result.box, atol=0.2)
        assert abs(float(row[2]) - result.confidence) < 1e-3
        assert np.allclose([float(v) for v in row[3:7]], np.concatenate(face.eyes), atol=0.2)
        assert abs(float(row[7]) - result.score) < 1e-4
    assert f"(the whole photo, not cropped: {scorer.score(image):.6f})" in DOC

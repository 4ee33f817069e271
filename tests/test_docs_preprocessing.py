"""docs/preprocessing.md: its worked examples are what the code computes."""

from __future__ import annotations

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
    for (row, col) in [(0, 0), (64, 64), (127, 127)]:
        cells = " | ".join(f"{v:.6f}" for v in tensor[:, row, col])
        assert f"| ({row}, {col}) | {cells} |" in DOC
    assert f"**{scorer.score(image):.6f}**" in DOC


def test_face_example_values(scorer):
    path = SAMPLES_DIR / "Adrien_Brody" / "Adrien_Brody_0001.jpg"
    tensor = scorer.prepare(path)
    assert ", ".join(f"{v:.6f}" for v in tensor[:, 0, 0]) in DOC
    assert ", ".join(f"{v:.6f}" for v in tensor[:, 64, 64]) in DOC
    assert f"{tensor.mean():.6f}" in DOC
    assert f"**{scorer.score(path):.6f}**" in DOC

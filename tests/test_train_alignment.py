"""Training crops cut as `score --detect` cuts faces: `label eyes`, then `Photos` aligning each copy at them."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fiqa_edge.assets import SAMPLES_DIR
from fiqa_edge.cli import main
from fiqa_edge.framing import LFW_FRAMING, align_face

pytest.importorskip("ai_edge_litert", reason="face detection needs pip install 'fiqa-edge[detect]'")

from fiqa_edge.detect import FaceFinder  # noqa: E402
from fiqa_edge.train.alignment import Photos, read_eyes  # noqa: E402


@pytest.fixture(scope="module")
def turned(tmp_path_factory):
    """A sample face turned by 20 degrees inside a larger photo, and the eyes `label eyes` finds on it."""
    root = tmp_path_factory.mktemp("photos")
    face = Image.open(sorted(SAMPLES_DIR.glob("*/*.jpg"))[0]).convert("RGB")
    photo = Image.new("RGB", (400, 400), (90, 90, 90))
    photo.paste(face.rotate(20, resample=Image.Resampling.BICUBIC), (75, 75))
    (root / "p").mkdir()
    photo.save(root / "p" / "turned.png")
    labels = root / "labels.csv"
    labels.write_text("image,score\np/turned.png,0.5\np/turned.png#blur=3.0,0.2\n")
    eyes = root / "eyes.csv"
    result = CliRunner().invoke(main, ["label", "eyes", "--images", str(root), "--labels", str(labels), "--out", str(eyes), "-q"])
    assert result.exit_code == 0, result.output
    return root, eyes


def test_label_eyes_writes_the_central_face_s_eyes_once_per_photo(turned):
    root, eyes = turned
    rows = list(csv.DictReader(eyes.open()))
    assert [r["image"] for r in rows] == ["p/turned.png"] and float(rows[0]["confidence"]) > 0.7
    (left, right), = read_eyes(eyes).values()
    assert abs(math.degrees(math.atan2(right[1] - left[1], right[0] - left[0])) + 20) < 5  # turned by 20 degrees


def test_photos_cut_each_copy_at_the_clean_photo_s_eyes_as_the_product_does(turned):
    root, eyes = turned
    photos = Photos(root, read_eyes(eyes), LFW_FRAMING)
    clean, blurred = photos.open("p/turned.png"), photos.open("p/turned.png#blur=3.0")
    assert clean.size == blurred.size == (LFW_FRAMING.size, LFW_FRAMING.size)
    product = align_face(Image.open(root / "p" / "turned.png").convert("RGB"),
                         FaceFinder().detect(Image.open(root / "p" / "turned.png").convert("RGB"))[0].eyes, LFW_FRAMING)
    assert np.abs(np.asarray(clean, float) - np.asarray(product, float)).mean() < 2  # the product's own crop
    found = FaceFinder().detect(clean)[0]  # the crop is upright, eyes where the framing puts them
    (lx, ly), (rx, ry) = found.eyes
    assert abs(math.degrees(math.atan2(ry - ly, rx - lx))) < 4
    assert abs((lx + rx) / 2 / LFW_FRAMING.size - LFW_FRAMING.eye_x) < 0.03
    assert np.asarray(blurred, float).std() < np.asarray(clean, float).std()  # the copy was degraded, same place
    assert Photos(root).open("p/turned.png").size == (400, 400)  # without eyes: as stored


def test_a_config_with_eyes_needs_a_framing(tmp_path):
    from fiqa_edge.train.config import DataConfig

    with pytest.raises(ValueError, match="data.framing"):
        DataConfig(root=tmp_path, labels=tmp_path / "l.csv", eyes=tmp_path / "eyes.csv").photos()

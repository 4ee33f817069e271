"""The camera-frame benchmark: faces cut from a frame blurred around them, scored by sharpness."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import ImageFilter

pytest.importorskip("ai_edge_litert", reason="the face finder needs the `detect` extra")

from fiqa_edge.assets import resolve_model  # noqa: E402
from fiqa_edge.benchmarks.camera_frames import (  # noqa: E402
    BLURS,
    CLIP_PX,
    _blurred_crops,
    camera_response,
    clip_best,
    clips_markdown,
    markdown,
)
from fiqa_edge.benchmarks.detect_precision import WILD  # noqa: E402
from fiqa_edge.detect import LFW_FRAMING, FaceFinder, align_face  # noqa: E402
from fiqa_edge.imaging import load_image  # noqa: E402

PHOTO = "audrey.jpg"  # one portrait of the calibrate half, a 290 px face


def test_blurring_around_the_face_cuts_what_blurring_the_whole_frame_cuts():
    frame = load_image(WILD / PHOTO)
    face = FaceFinder().detect(frame)[0]
    crops = _blurred_crops(frame, face, LFW_FRAMING)
    assert len(crops) == len(BLURS) + 1
    for k, crop in zip(BLURS, crops[1:]):
        whole = align_face(frame.filter(ImageFilter.GaussianBlur(k * face.width / 150)), face.eyes, LFW_FRAMING)
        assert np.abs(np.asarray(crop, float) - np.asarray(whole, float)).mean() < 0.5


@pytest.fixture
def portrait_folder(tmp_path):
    """A photo folder of the portrait alone, as the test split."""
    shutil.copy(WILD / PHOTO, tmp_path / PHOTO)
    entry = json.loads((WILD / "faces.json").read_text())[PHOTO]
    (tmp_path / "faces.json").write_text(json.dumps({PHOTO: {**entry, "split": "test"}}))
    return tmp_path


def test_camera_response_ranks_a_sharp_portrait_above_its_strong_blurs(portrait_folder):
    result = camera_response({"demo": resolve_model("demo")}, folder=portrait_folder)
    assert result["faces"] == {"native": 1, "480": 1, "720": 1, "1080": 1}
    rows = result["models"]["demo"]
    assert rows["all"]["spearman"] < -0.8  # the score falls as the blur grows, at every frame size
    assert set(rows) == {"native", "480", "720", "1080", "all"}
    assert "| demo |" in markdown(result)


def test_best_frames_of_a_clip_out_of_focus_are_its_sharp_frames(portrait_folder):
    result = clip_best({"demo": resolve_model("demo")}, folder=portrait_folder, px=True)
    rows = result["models"]["demo"]
    assert set(rows) == {"480", "720", "1080"} and result["best"] == CLIP_PX.count(0) == 3
    assert all(row["people"] == 1 for row in rows.values())  # one person, followed through the encoded clip
    assert all(row["all_sharp"] == 1.0 and row["blurred_returned"] == 0 for row in rows.values())
    assert "| demo | 1 of 1 / 0 |" in clips_markdown(result)

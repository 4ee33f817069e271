"""The default model's acceptance rows: error versus discard per recogniser, degradation response on photos."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from fiqa_edge.assets import DEFAULT_BUNDLE, SAMPLES_DIR

pytest.importorskip("dlib", reason="the `labels` extra (dlib-bin, face-recognition-models) is not installed")
pytest.importorskip("ai_edge_litert", reason="the detector needs the `detect` extra")


def test_pauc_is_one_when_nothing_is_bought_and_lower_when_fnmr_falls():
    from fiqa_edge.train.utility_eval import _pauc

    discard = np.round(np.arange(0, 0.51, 0.01), 2)
    assert _pauc(np.full(discard.shape, 0.1), discard) == pytest.approx(1.0)
    assert _pauc(0.1 * (1 - discard), discard) == pytest.approx(0.9)  # FNMR falls 20 % by 20 % discarded: mean 0.9


@pytest.mark.heavy
def test_evaluate_on_the_sample_faces_and_two_group_photos(tmp_path):
    from fiqa_edge.train.utility_eval import RESPONSE_KINDS, evaluate
    from fiqa_edge.train.utility_labels import make_pairs

    labels = tmp_path / "labels.csv"
    with open(SAMPLES_DIR / "identities.csv", newline="") as f, open(labels, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["image", "identity", "degradation"])
        writer.writerows([row["path"], row["identity"], "none"] for row in csv.DictReader(f))
    genuine, impostors = make_pairs(SAMPLES_DIR, labels, tmp_path / "pairs.csv", impostors=500, workers=1)
    assert genuine == 60 and impostors == 500
    photos = tmp_path / "photos"
    photos.mkdir()
    data = SAMPLES_DIR.parents[2] / "benchmarks" / "data" / "photos"
    for name in ("Charles_Taylor_0004.jpg", "Li_Zhaoxing_0007.jpg"):
        shutil.copy(data / name, photos / name)

    report = evaluate({"v1": DEFAULT_BUNDLE}, tmp_path / "pairs.csv", SAMPLES_DIR, sorted(photos.iterdir()),
                      tmp_path / "out")
    assert json.loads((tmp_path / "out" / "evaluation.json").read_text()) == report
    assert (tmp_path / "out" / "edc.png").read_bytes()[:4] == b"\x89PNG"
    rows = {(r["fmr"], r["method"].split(" ")[0]): r for r in report["edc"]}
    assert {m for _, m in rows} == {"v1", "laplacian", "random"} and {f for f, _ in rows} == {1e-2, 1e-3}
    assert {r["recognizer"] for r in report["edc"]} == {"dlib", "sface", "w600k"}  # FaceRes needs its ONNX file
    random = rows[(1e-2, "random")]
    assert random["pauc_20"] == pytest.approx(1.0, abs=0.1) and random["spread"] > 0
    response = report["degradation_response"]
    assert response["faces"] >= 5 and set(response["spearman"]["v1"]) == set(RESPONSE_KINDS)
    assert response["spearman"]["laplacian"]["blur"] < -0.9  # sharpness falls with every step of blur
    assert response["spearman"]["v1"]["blur"] < -0.5
    for recognizer in ("dlib", "sface", "w600k"):  # each recogniser's embedding drifts from the clean face's
        assert response["spearman"][f"recogniser {recognizer}"]["blur"] < -0.5, recognizer
    assert "| v1 |" in (tmp_path / "out" / "evaluation.md").read_text()

"""The training report: test table with the Laplacian baseline, EDC table and plot."""

from __future__ import annotations

import json

import pytest
import torch
from official_reference import spread_outputs

from fiqa_edge.assets import SAMPLES_DIR
from fiqa_edge.preprocess import PreprocessSpec
from fiqa_edge.zoo import create_model
from fiqa_edge.zoo.checkpoint import save_checkpoint

pytest.importorskip("dlib", reason="the `labels` extra (dlib-bin, face-recognition-models) is not installed")


@pytest.mark.heavy
def test_report_on_the_sample_faces(tmp_path):
    from fiqa_edge.train.report import make_report
    from fiqa_edge.train.utility_labels import UtilityConfig, make_utility_labels

    names = sorted(p.name for p in SAMPLES_DIR.iterdir() if p.is_dir())
    pairs = tmp_path / "pairs.txt"
    lines = ["1\t10"] + [f"{n}\t1\t{k}" for n in names for k in (2, 3)]
    lines += [f"{a}\t1\t{b}\t2" for a, b in zip(names, names[1:] + names[:1])] * 2
    pairs.write_text("\n".join(lines) + "\n")
    labels = tmp_path / "labels"
    make_utility_labels(UtilityConfig(images=SAMPLES_DIR, out=labels, copies=1, impostors=20, pairs=pairs, workers=1))

    torch.manual_seed(0)
    student = spread_outputs(create_model("fiqa_edgenext_xxs"), seed=3)
    run = tmp_path / "run"
    ckpt = save_checkpoint(student, run / "student" / "best.safetensors", arch="fiqa_edgenext_xxs", spec=PreprocessSpec(input_size=64))
    model_row = {"srcc": 0.5, "plcc": 0.5, "krcc": 0.4, "rmse": 0.1, "score": 0.5, "params": 1, "gflops": 0.1,
                 "input_size": 64, "arch": "fiqa_edgenext_xxs", "checkpoint": str(ckpt)}
    (run / "summary.json").write_text(json.dumps({"test_images": 1, "models": {"student": model_row}}))

    report = make_report(run, labels, SAMPLES_DIR, pairs, tmp_path / "out", workers=0)
    from scipy import stats

    from fiqa_edge.baselines import laplacian_variance
    from fiqa_edge.degrade import open_image_ref
    from fiqa_edge.image_lists import read_labels

    test = read_labels(labels / "test.csv", SAMPLES_DIR)
    sharpness = [laplacian_variance(open_image_ref(it.image, SAMPLES_DIR)) for it in test]
    expected = stats.spearmanr(sharpness, [it.score for it in test])[0]
    assert report["laplacian_baseline"]["srcc"] == pytest.approx(expected, abs=1e-9)
    all_pairs = report["edc"]["all pairs"]
    assert all_pairs["pairs"] == 40 and all_pairs["genuine"] == 20
    assert {r["method"] for r in all_pairs["rows"]} == {"student", "laplacian"}
    for fmr in (1e-2, 1e-3):  # nothing discarded: every method starts from the same pairs and threshold
        rows = [r for r in all_pairs["rows"] if r["fmr"] == fmr]
        assert len(rows) == 2 and rows[0]["fnmr_0"] == rows[1]["fnmr_0"]
        for r in rows:  # the reduction is the FNMR's relative fall, 0 where there was none to fall (no NaN)
            assert r["reduction_20"] == pytest.approx(1 - r["fnmr_20"] / r["fnmr_0"] if r["fnmr_0"] else 0.0)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "variance of Laplacian" in text and "EDC, all pairs" in text
    assert (tmp_path / "out" / "edc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

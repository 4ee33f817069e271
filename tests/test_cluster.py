"""`score --ray`'s parts that need no cluster: listing inputs (folders, lists, Parquet, fsspec URIs), the blocks,
one scorer actor's rows and part file, and the run record that makes a rerun resume or refuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fiqa_edge.assets import DEFAULT_BUNDLE, SAMPLES_DIR
from fiqa_edge.errors import FiqaError

pa = pytest.importorskip("pyarrow", reason="the `cluster` extra (ray[data], pyarrow, fsspec) is not installed")
pq = pytest.importorskip("pyarrow.parquet")
fsspec = pytest.importorskip("fsspec")

from fiqa_edge.cluster import BlockScorer, InputImage, _blocks, _claim, list_inputs  # noqa: E402

FACES = sorted(SAMPLES_DIR.glob("*/*.jpg"))[:6]


def _settings(**changes):
    from fiqa_edge.cluster import model_hash

    return {"model": str(DEFAULT_BUNDLE), "bundle_sha256": model_hash(DEFAULT_BUNDLE), "backend": "auto", "detect": False,
            "detector": "both", "min_confidence": None, "min_quality": None, "block_size": 4, "batch_size": 8, "threads": 1,
            **changes}


def test_inputs_from_folders_lists_tables_and_fsspec_uris(tmp_path):
    (tmp_path / "list.txt").write_text("\n".join(str(p) for p in FACES[:2]) + "\n")
    (tmp_path / "list.csv").write_text("path,note\n" + "\n".join(f"{p.parent.name}/{p.name},x" for p in FACES[:2]))
    for p in FACES[:2]:
        (tmp_path / p.parent.name).mkdir(exist_ok=True)
        (tmp_path / p.parent.name / p.name).write_bytes(p.read_bytes())
    pq.write_table(pa.table({"path": [str(p) for p in FACES[2:4]]}), tmp_path / "paths.parquet")
    pq.write_table(pa.table({"path": ["a.jpg", "b.jpg"], "image": [FACES[4].read_bytes(), b"not an image"]}),
                   tmp_path / "bytes.parquet")
    memory = fsspec.filesystem("memory")
    memory.pipe("/photos/x/one.jpg", FACES[5].read_bytes())
    memory.pipe("/photos/x/notes.txt", b"skip me")
    found = list_inputs([str(tmp_path / "list.txt"), str(tmp_path / "list.csv"), str(tmp_path / "paths.parquet"),
                         str(tmp_path / "bytes.parquet"), "memory://photos"])
    listed = [str(p) for p in FACES[:2]]                                     # .txt: paths as written
    relative = [str(tmp_path / p.parent.name / p.name) for p in FACES[:2]]   # .csv: relative to the list's folder
    assert [i.name for i in found[:6]] == [*listed, *relative, *(str(p) for p in FACES[2:4])]
    assert [(i.name, i.table, i.row) for i in found[6:8]] == [("a.jpg", str(tmp_path / "bytes.parquet"), 0),
                                                            ("b.jpg", str(tmp_path / "bytes.parquet"), 1)]
    assert found[8] == InputImage("memory:///photos/x/one.jpg", "memory:///photos/x/one.jpg")
    with pytest.raises(FiqaError, match="no such file"):
        list_inputs([str(tmp_path / "missing")])
    pq.write_table(pa.table({"other": [1]}), tmp_path / "bad.parquet")
    with pytest.raises(FiqaError, match="'path' column"):
        list_inputs([str(tmp_path / "bad.parquet")])


def test_blocks_are_named_by_their_images_so_a_rerun_finds_them():
    images = [InputImage(f"{k}.jpg", f"{k}.jpg") for k in range(10)]
    blocks = _blocks(images, 4)
    assert [len(chunk) for _, chunk in blocks] == [4, 4, 2] and blocks == _blocks(list(images), 4)
    assert blocks[0][0] != _blocks([InputImage("other.jpg", "other.jpg"), *images[1:]], 4)[0][0]


def test_an_actor_s_block_gives_one_row_per_image_and_an_error_row_for_each_bad_one(tmp_path):
    from fiqa_edge.scorer import QualityScorer

    pq.write_table(pa.table({"path": ["good.jpg", "bad.jpg"], "image": [FACES[0].read_bytes(), b"\xff\xd8junk"]}),
                   tmp_path / "t.parquet")
    block = [InputImage(str(p), str(p)) for p in FACES[:3]] + [InputImage(str(tmp_path / "gone.jpg"), str(tmp_path / "gone.jpg")),
             InputImage("good.jpg", table=str(tmp_path / "t.parquet"), row=0),
             InputImage("bad.jpg", table=str(tmp_path / "t.parquet"), row=1)]
    out = tmp_path / "out"
    out.mkdir()
    actor = BlockScorer(_settings(min_quality="30p"), str(out))
    done = actor({"part": np.array(["part-00000-x.parquet"]), "images": np.array([json.dumps([i.__dict__ for i in block])])})
    assert done == {"part": ["part-00000-x.parquet"], "images": [6], "rows": [6]}
    rows = {r["path"]: r for r in pq.read_table(out / "part-00000-x.parquet").to_pylist()}
    assert set(rows) == {i.name for i in block} and not list(out.glob(".*tmp"))
    reference = {r.path: r for r in QualityScorer.load(DEFAULT_BUNDLE).score_paths([str(p) for p in FACES[:3]])}
    for path, expected in reference.items():
        assert abs(rows[path]["score"] - expected.score) <= 1e-6 and rows[path]["error"] is None
        assert rows[path]["accepted"] is not None and rows[path]["bundle_sha256"] == _settings()["bundle_sha256"]
    assert abs(rows["good.jpg"]["score"] - reference[str(FACES[0])].score) <= 1e-6
    assert "gone.jpg" in rows[str(tmp_path / "gone.jpg")]["error"] and rows["bad.jpg"]["error"].startswith("bad.jpg:")


def test_a_run_record_lets_the_same_run_resume_and_refuses_another(tmp_path):
    _claim(tmp_path / "out", _settings(), ["part-1", "part-2"])
    _claim(tmp_path / "out", _settings(threads=2), ["part-1", "part-2"])  # threads do not change the output
    with pytest.raises(FiqaError, match="min_quality"):
        _claim(tmp_path / "out", _settings(min_quality="55q"), ["part-1", "part-2"])
    with pytest.raises(FiqaError, match="parts"):
        _claim(tmp_path / "out", _settings(), ["part-1", "part-3"])


def test_ray_options_are_refused_without_ray_and_with_one_machine_outputs(tmp_path):
    from click.testing import CliRunner

    from fiqa_edge.cli import main

    alone = CliRunner().invoke(main, ["score", str(FACES[0]), "--out", str(tmp_path / "o")])
    assert alone.exit_code == 2 and "--ray needs --out" in alone.output
    mixed = CliRunner().invoke(main, ["score", str(FACES[0]), "--ray", "--out", str(tmp_path / "o"), "--csv", "x.csv"])
    assert mixed.exit_code == 2 and "do not apply" in mixed.output
    assert not Path(tmp_path / "o").exists()


def test_an_actor_with_detect_gives_the_faces_one_machine_gives(tmp_path):
    pytest.importorskip("ai_edge_litert", reason="face detection needs the `detect` extra")
    from fiqa_edge.detect import FaceFinder
    from fiqa_edge.faces import FaceScorer
    from fiqa_edge.scorer import QualityScorer

    group = Path(__file__).parents[1] / "benchmarks" / "data" / "wild" / "tracking_faces.jpg"
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (64, 64), (120, 120, 120)).save(blank)
    block = [InputImage(str(group), str(group)), InputImage(str(blank), str(blank))]
    actor = BlockScorer(_settings(detect=True), str(tmp_path))
    actor({"part": np.array(["part-0.parquet"]), "images": np.array([json.dumps([i.__dict__ for i in block])])})
    rows = pq.read_table(tmp_path / "part-0.parquet").to_pylist()
    faces = [r for r in rows if r["path"] == str(group)]
    expected = FaceScorer(QualityScorer.load(DEFAULT_BUNDLE), FaceFinder()).score(str(group))
    assert [r["face"] for r in faces] == [f.face for f in expected] == [0, 1, 2]
    for row, face in zip(faces, expected):
        assert abs(row["score"] - face.score) <= 1e-6 and abs(row["x0"] - face.box[0]) < 1e-6
    (empty,) = [r for r in rows if r["path"] == str(blank)]
    assert empty["face"] == -1 and empty["error"].endswith("no face found")

"""The recipe end to end on the smoke config: one process, two (torchrun), resume, re-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from fiqa_edge.cli import main
from fiqa_edge.degrade import DEGRADATIONS
from fiqa_edge.errors import FiqaError
from fiqa_edge.train import engine
from fiqa_edge.train.config import ModelTrainConfig, load_config
from fiqa_edge.train.data import OrderPairs, PhotoBatchSampler, clean_flags, photo_ids
from fiqa_edge.train.distributed import Dist
from fiqa_edge.train.recipe import MODELS, labelled_splits
from fiqa_edge.zoo import load_model

SMOKE = Path(__file__).parents[1] / "train" / "configs" / "smoke.yaml"
KEYS = {"srcc", "plcc", "krcc", "rmse", "score", "params", "gflops", "checkpoint"}


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    result = CliRunner().invoke(main, ["train", "recipe", "--config", str(SMOKE), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_smoke_recipe_writes_every_stage_and_the_summary(smoke_run):
    out, printed = smoke_run
    for stage in ("teacher", "pseudo_U1", "teacher_plus", "pseudo_U2", "student"):
        assert (out / stage / "done.json").is_file(), stage
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == set(MODELS)
    for name, m in summary["models"].items():
        assert KEYS <= set(m), name
        assert m["score"] == pytest.approx((m["srcc"] + m["plcc"]) / 2)  # the challenge's score
        assert m["gflops"] > 0 and Path(m["checkpoint"]).is_file()
    assert summary["models"]["student"]["params"] == 1_179_641
    assert "teacher_plus" in printed and "SRCC" in printed


def test_summary_figures_are_the_checkpoints_own(smoke_run):
    """The student's test row, recomputed by another route (numpy preprocessing, the runtime scorer)."""
    from fiqa_edge.degrade import open_image_ref
    from fiqa_edge.metrics import quality_metrics
    from fiqa_edge.scorer import QualityScorer
    from fiqa_edge.train.config import load_config
    from fiqa_edge.train.recipe import labelled_splits

    out, _ = smoke_run
    cfg = load_config(SMOKE)
    _, _, test = labelled_splits(cfg)
    student = json.loads((out / "summary.json").read_text())["models"]["student"]
    scores = QualityScorer.load(student["checkpoint"]).score_batch([open_image_ref(it.image, cfg.data.root) for it in test])
    expected = quality_metrics(scores, np.array([it.score for it in test]))
    assert student["srcc"] == pytest.approx(expected.srcc, abs=1e-6)
    assert student["plcc"] == pytest.approx(expected.plcc, abs=1e-4)


def test_pseudo_labels_carry_the_teacher_hash_and_label_scale(smoke_run):
    out, _ = smoke_run
    rows = (out / "pseudo_U1" / "U1.csv").read_text().splitlines()
    assert rows[0] == "path,raw_score,score" and len(rows) == 25
    record = json.loads((out / "pseudo_U1" / "U1.json").read_text())
    from fiqa_edge.manifest import sha256_file

    assert record["model_sha256"] == sha256_file(out / "teacher" / "best.safetensors")
    assert set(record["logistic"]) == {"b1", "b2", "b3", "b4"}


def test_finished_stages_are_skipped(smoke_run):
    out, _ = smoke_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    result = CliRunner().invoke(main, ["train", "recipe", "--config", str(SMOKE), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}


def test_pseudo_label_command(smoke_run, tmp_path):
    out, _ = smoke_run
    cfg = load_config(SMOKE)
    target = tmp_path / "U2.csv"
    result = CliRunner().invoke(main, [
        "pseudo-label", "--model", str(out / "student" / "best.safetensors"), "--images", str(cfg.data.unlabelled_2),
        "--fit-on", str(cfg.data.labels), "--root", str(cfg.data.root), "--out", str(target), "--workers", "0", "-q"])
    assert result.exit_code == 0, result.output
    assert len(target.read_text().splitlines()) == 25
    assert json.loads(target.with_suffix(".json").read_text())["arch"] == "fiqa_edgenext_xxs"


def test_resume_after_a_crash_mid_epoch_gives_the_same_weights(tmp_path, monkeypatch):
    cfg = load_config(SMOKE)
    model_cfg = cfg.student
    model_cfg.epochs, model_cfg.input_size, model_cfg.resize = 3, 32, 36
    train, val, _ = labelled_splits(cfg)
    kw = dict(seed=5, dist=Dist(), progress=False)
    engine.fit(model_cfg, train, val, cfg.data.root, tmp_path / "straight", **kw)

    real_loss, calls = engine.quality_loss, {"n": 0}

    def crash_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:  # epoch 1 has 6 batches: this is mid-way through epoch 2
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(engine, "quality_loss", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        engine.fit(model_cfg, train, val, cfg.data.root, tmp_path / "resumed", **kw)
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["epoch"] == 0
    monkeypatch.setattr(engine, "quality_loss", real_loss)
    engine.fit(model_cfg, train, val, cfg.data.root, tmp_path / "resumed", **kw)

    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert load_file(tmp_path / "straight" / "best.safetensors").keys() == load_file(tmp_path / "resumed" / "best.safetensors").keys()
    assert json.loads(a["history"])[-1]["srcc"] == json.loads(b["history"])[-1]["srcc"]


def test_resume_refuses_a_different_run(tmp_path):
    cfg = load_config(SMOKE)
    cfg.student.epochs, cfg.student.input_size, cfg.student.resize = 1, 32, 36
    train, val, _ = labelled_splits(cfg)
    engine.fit(cfg.student, train, val, cfg.data.root, tmp_path, seed=1, dist=Dist(), progress=False)
    with pytest.raises(FiqaError, match="use another output folder"):
        engine.fit(cfg.student, train, val, cfg.data.root, tmp_path, seed=2, dist=Dist(), progress=False)


def test_save_period_keeps_the_weights_of_every_nth_epoch(tmp_path):
    cfg = load_config(SMOKE)
    cfg.student.epochs, cfg.student.input_size, cfg.student.resize, cfg.student.save_period = 3, 32, 36, 2
    train, val, _ = labelled_splits(cfg)
    engine.fit(cfg.student, train, val, cfg.data.root, tmp_path, seed=1, dist=Dist(), progress=False)
    assert sorted(p.name for p in tmp_path.glob("epoch*")) == ["epoch2.safetensors"]
    kept = load_model(tmp_path / "epoch2.safetensors")
    assert kept.arch == cfg.student.arch and kept.spec.input_size == 32
    last = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    assert any(not torch.equal(v, last[k]) for k, v in kept.model.state_dict().items())  # epoch 2's, not epoch 3's
    with pytest.raises(ValueError, match="save_period"):
        ModelTrainConfig(arch=cfg.student.arch, input_size=32, save_period=-1)


def _smoke_with(tmp_path: Path, data_lines: str) -> Path:
    """The smoke config with extra lines in its data section, its paths made absolute, in ``tmp_path``."""
    text = SMOKE.read_text().replace("../../", f"{SMOKE.parents[2]}/").replace(" smoke/", f" {SMOKE.parent}/smoke/")
    path = tmp_path / "smoke.yaml"
    path.write_text(text.replace("data:\n", "data:\n" + data_lines, 1))
    return path


def test_repeat_shows_the_chosen_degradations_more_often_in_training_only(tmp_path):
    from collections import Counter

    from fiqa_edge.degrade import parse_ref

    def kinds(items):
        return Counter(parse_ref(i.image)[1] for i in items)

    base_train, base_val, _ = labelled_splits(load_config(SMOKE))
    path = _smoke_with(tmp_path, "  repeat: {noise: 3, jpeg: 2}\n")
    train, val, _ = labelled_splits(load_config(path))
    (tmp_path / "bad.yaml").write_text(path.read_text().replace("noise: 3", "noise: 0"))
    with pytest.raises(FiqaError, match=r"repeat: expected a degradation kind .* got noise: 0"):
        load_config(tmp_path / "bad.yaml")
    before, after = kinds(base_train), kinds(train)
    assert before["noise"] > 0 and before["jpeg"] > 0
    assert after == before + Counter({"noise": 2 * before["noise"], "jpeg": before["jpeg"]})
    assert val == base_val


def test_pseudo_labelled_images_join_the_training_set_only(tmp_path):
    base_train, base_val, base_test = labelled_splits(load_config(SMOKE))
    images = load_config(SMOKE).data.unlabelled_2.read_text().splitlines()[1:3]
    pseudo = tmp_path / "U2_pseudo.csv"
    pseudo.write_text(f"path,raw_score,score\n{images[0]},0.9,0.25\n{images[1]},0.1,0.75\n")
    train, val, test = labelled_splits(load_config(_smoke_with(tmp_path, f"  pseudo: [{pseudo}]\n")))
    assert train[: len(base_train)] == base_train and (val, test) == (base_val, base_test)
    assert [(i.image, i.score) for i in train[len(base_train):]] == [(images[0], 0.25), (images[1], 0.75)]
    pseudo.write_text(f"image,score\n{images[0]},0.5\n")
    with pytest.raises(FiqaError, match=r"U2_pseudo.csv: not a pseudo-label CSV with path and score columns"):
        labelled_splits(load_config(tmp_path / "smoke.yaml"))


def test_train_fit_records_the_configs_framing(tmp_path):
    from fiqa_edge.framing import LFW_FRAMING
    from fiqa_edge.zoo import load_model

    path = _smoke_with(tmp_path, "  framing: lfw\n")
    result = CliRunner().invoke(main, ["train", "fit", "--config", str(path), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    assert load_model(tmp_path / "run" / "best.safetensors").framing == LFW_FRAMING


def _fit_recording_term(tmp_path: Path, monkeypatch, term: str, setting: str) -> tuple[list, Path]:
    """Run `train fit` on the smoke config with ``setting`` added to the student, recording the arguments of
    the engine's loss function ``term`` at every batch; return those calls and the config's path."""
    seen = []
    original = getattr(engine, term)

    def recording(pred, target, marks, scale):
        seen.append((target.tolist(), marks.tolist()))
        return original(pred, target, marks, scale)

    monkeypatch.setattr(engine, term, recording)
    path = _smoke_with(tmp_path, "")
    path.write_text(path.read_text().replace("student:\n", f"student:\n  {setting}\n", 1))
    result = CliRunner().invoke(main, ["train", "fit", "--config", str(path), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    return seen, path


def test_within_photo_term_trains_on_batches_of_whole_photos(tmp_path, monkeypatch):
    from collections import Counter

    calls, path = _fit_recording_term(tmp_path, monkeypatch, "within_photo_loss", "within_weight: 1.0")
    seen = [photos for _, photos in calls]
    train, _, _ = labelled_splits(load_config(path))
    copies = Counter(photo_ids(train).tolist())
    sampler = PhotoBatchSampler(train, 8, seed=0)
    batches = len(sampler)
    sampler.set_epoch(1)
    assert len(seen) == batches + len(sampler)  # every batch of both epochs
    for photos in seen:
        assert len(photos) > len(set(photos))  # the batch holds pairs to rank
        assert all(n == copies[p] for p, n in Counter(photos).items())  # and every copy of its photos


def test_clean_pairs_term_sees_which_images_of_each_batch_are_clean(tmp_path, monkeypatch):
    seen, path = _fit_recording_term(tmp_path, monkeypatch, "clean_pairs_loss", "clean_weight: 1.0")
    train, _, _ = labelled_splits(load_config(path))
    flags = clean_flags(train).tolist()
    assert 0 < sum(flags) < len(flags)
    clean = {round(it.score, 4) for it, f in zip(train, flags) if f}
    degraded = {round(it.score, 4) for it, f in zip(train, flags) if not f}
    checked = 0
    for targets, marks in seen:
        for t, c in zip(targets, marks):
            t = round(t, 4)
            if (t in clean) != (t in degraded):  # a score both kinds have tells nothing
                assert t in (clean if c else degraded)
                checked += 1
    assert checked > len(train)  # most images of both epochs


def test_order_term_ranks_extra_pairs_beside_every_batch(tmp_path, monkeypatch):
    seen = []
    original = engine.order_loss

    def recording(weaker, stronger, margin):
        seen.append((len(weaker), len(stronger), margin))
        return original(weaker, stronger, margin)

    monkeypatch.setattr(engine, "order_loss", recording)
    path = _smoke_with(tmp_path, "")
    path.write_text(path.read_text().replace("student:\n", "student:\n  order_weight: 1.0\n  order_pairs: 3\n", 1))
    result = CliRunner().invoke(main, ["train", "fit", "--config", str(path), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    train, _, _ = labelled_splits(load_config(path))
    batches = len(train) // 8  # the smoke student's batch of 8, last incomplete batch dropped
    assert seen == [(3, 3, 0.02)] * (2 * batches)  # 3 pairs beside every batch of both epochs


def test_order_pairs_differ_in_strength_only_and_are_seeded_by_epoch():
    cfg = load_config(SMOKE)
    train, _, _ = labelled_splits(cfg)
    spec = engine._spec(cfg.student)
    pairs = OrderPairs(train[:12], cfg.data.root, spec, ["occlude"], seed=0)
    grey = (128 / 255 - spec.mean[0]) / spec.std[0]  # the occluding box's value in the red channel

    def draw(epoch):
        pairs.set_epoch(epoch)
        torch.manual_seed(0)  # the shared random crop
        return [pairs[i] for i in range(len(pairs))]

    first = draw(0)
    for weak, strong in first:
        assert weak.shape == strong.shape == (3, spec.input_size, spec.input_size)
        boxed = [int((torch.abs(t[0] - grey) < 1e-4).sum()) for t in (weak, strong)]
        assert boxed[1] > boxed[0]  # the stronger copy hides more of the face
    assert all(torch.equal(a, b) for p, q in zip(first, draw(0)) for a, b in zip(p, q))  # redone epoch, same pairs
    assert not all(torch.equal(p[1], q[1]) for p, q in zip(first, draw(1)))  # another epoch, other draws


def test_config_errors_name_the_file_and_setting(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("epochs: 2", "epochz: 2", 1))
    with pytest.raises(FiqaError, match=r"bad.yaml \[teacher\]: unknown setting\(s\) epochz"):
        load_config(bad)
    (tmp_path / "framing.yaml").write_text(SMOKE.read_text().replace("data:\n", "data:\n  framing: nope\n", 1))
    with pytest.raises(FiqaError, match=r"framing.yaml \[data\]: unknown framing 'nope'; known: lfw"):
        load_config(tmp_path / "framing.yaml")
    (tmp_path / "copies.yaml").write_text(SMOKE.read_text().replace("student:\n", "student:\n  within_copies: 1\n", 1))
    with pytest.raises(FiqaError, match=r"copies.yaml \[student\]: within_copies must be at least 2"):
        load_config(tmp_path / "copies.yaml")
    (tmp_path / "order.yaml").write_text(SMOKE.read_text().replace("student:\n", "student:\n  order_kinds: [smudge]\n", 1))
    with pytest.raises(FiqaError, match=r"order.yaml \[student\]: order_kinds must name degradations of blur, .*smudge"):
        load_config(tmp_path / "order.yaml")
    (tmp_path / "nodata.yaml").write_text("seed: 1\n")
    with pytest.raises(FiqaError, match="missing section 'data'"):
        load_config(tmp_path / "nodata.yaml")


@pytest.mark.heavy
def test_smoke_recipe_under_torchrun_with_two_processes(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "fiqa_edge", "train", "recipe", "--config", str(SMOKE), "--out", str(out), "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == set(MODELS)
    assert summary["test_images"] == 18
    assert done.stdout.count("test images: 18") == 1  # only rank 0 prints
    rows = (out / "pseudo_U2" / "U2.csv").read_text().splitlines()
    assert len(rows) == 25  # both ranks' shards merged, once


def test_pseudo_label_benchmark_agrees_with_the_per_image_loop(faces, tmp_path):
    folder = tmp_path / "few"
    folder.mkdir()
    for p in faces[:6]:
        (folder / p.name).write_bytes(p.read_bytes())
    result = CliRunner().invoke(main, ["bench", "pseudo-label", "--images", str(folder), "--input-size", "64",
                                       "--batch-size", "4", "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 6 and report["max_abs_diff"] <= 1e-5
    assert report["per_image_ips"] > 0 and report["batched_ips"] > 0


@pytest.mark.parametrize("name", sorted(p.name for p in SMOKE.parent.glob("*.yaml") if p != SMOKE))
def test_the_shipped_configs_load_and_name_files_that_exist(name):
    """Every recipe in train/configs: every label file they name is in the repository, and so is v2's start, or
    the run of another shipped config that makes it."""
    cfg = load_config(SMOKE.parent / name)
    for path in (cfg.data.labels, cfg.data.val, cfg.data.test, cfg.data.unlabelled_1, cfg.data.unlabelled_2, cfg.data.eyes,
                 *cfg.data.pseudo):
        assert path is None or path.is_file(), path
    assert cfg.student.arch in {"fiqa_edgenext_xxs", "fiqa_edgenext_xxs_lp"} and cfg.data.framing == "lfw"
    init = None if cfg.student.init is None else Path(cfg.student.init).resolve()
    if init is not None and not init.is_file():
        run = init.relative_to(SMOKE.parents[2] / "runs").parent.as_posix()
        assert init.name == "best.safetensors"
        assert any(f"--out runs/{run}\n" in c.read_text() for c in SMOKE.parent.glob("*.yaml") if c.name != name)


@pytest.mark.parametrize("gap", [0.02, 0.2, 0.5])
def test_order_pairs_keep_their_strengths_at_least_the_gap_apart(gap):
    cfg = load_config(SMOKE)
    train, _, _ = labelled_splits(cfg)
    pairs = OrderPairs(train, cfg.data.root, engine._spec(cfg.student), ["blur"], seed=0, gap=gap)
    lo, hi = DEGRADATIONS["blur"].weakest, DEGRADATIONS["blur"].strongest
    draws = [pairs._draw(i) for i in range(300)]
    gaps = [(strong - (lo if weak is None else weak)) / (hi - lo) for _, weak, strong in draws]
    assert min(gaps) >= gap - 0.01  # strengths are rounded to 0.01
    assert min(gaps) < gap + 0.05  # and the gap is reached, not only exceeded

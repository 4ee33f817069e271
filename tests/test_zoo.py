"""Model zoo: registry, official checkpoint layouts, recognition and clear load errors."""

from __future__ import annotations

import os
import pickle
import stat

import pytest
import torch
from official_reference import OfficialEdgeNeXtXXS, OfficialSwinB

from fiqa_edge.errors import CheckpointError, UnknownModelError
from fiqa_edge.preprocess import PreprocessSpec
from fiqa_edge.zoo import create_model, get_model_cfg, is_model, list_models, load_model
from fiqa_edge.zoo.checkpoint import detect_arch, read_checkpoint, save_checkpoint


def test_registry_lists_and_suggests():
    assert list_models() == ["fiqa_edgenext_xxs", "fiqa_edgenext_xxs_lp", "fiqa_swin_b"]
    assert list_models("*swin*") == ["fiqa_swin_b"]
    assert is_model("timm:resnet18") and not is_model("timm:") and not is_model("nope")
    assert get_model_cfg("fiqa_swin_b").input_size == 448
    with pytest.raises(UnknownModelError, match="did you mean fiqa_edgenext_xxs"):
        get_model_cfg("fiqa_edgenext_xs")


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_builds_and_scores(name):
    model = create_model(name).eval()
    size = 64
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 1)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("official, name", [(OfficialEdgeNeXtXXS, "fiqa_edgenext_xxs"),
                                            (OfficialEdgeNeXtXXS, "fiqa_edgenext_xxs_lp"), (OfficialSwinB, "fiqa_swin_b")])
def test_state_dict_layout_equals_the_official(official, name):
    ours = {k: tuple(v.shape) for k, v in create_model(name).state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in official().state_dict().items()}
    assert ours == theirs


def test_student_parameter_count():
    assert sum(p.numel() for p in create_model("fiqa_edgenext_xxs").parameters()) == 1_179_641


def test_low_pass_student_blurs_its_input_as_a_gaussian_then_scores_as_the_student(official_student, tmp_path):
    from scipy.ndimage import gaussian_filter

    model, path = official_student
    low_pass = load_model(path, arch="fiqa_edgenext_xxs_lp").model
    x = torch.rand(2, 3, 48, 48)
    blurred = low_pass.prefilter(x).numpy()
    sigma = low_pass.prefilter.sigma
    reference = gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=3.0)
    assert abs(blurred - reference).max() < 1e-5
    assert not torch.allclose(low_pass.prefilter(x), x, atol=1e-2)  # it does blur
    plain = load_model(path).model
    with torch.no_grad():
        assert torch.allclose(low_pass(x), plain(torch.from_numpy(reference)), atol=1e-5)
    state, _ = read_checkpoint(path)
    assert detect_arch(state) == "fiqa_edgenext_xxs"  # an unnamed student checkpoint is the plain student


def test_timm_backbone_with_quality_head():
    model = create_model("timm:resnet18")
    assert model.quality[0].in_features == 512 and model.quality[1].out_features == 1
    with pytest.raises(UnknownModelError):
        create_model("timm:no_such_net")


@pytest.mark.parametrize("wrap", ["plain", "trainer_dict", "ddp_prefix", "safetensors"])
def test_official_checkpoint_forms_load_unchanged(official_student, tmp_path, wrap):
    model, plain = official_student
    state = model.state_dict()
    if wrap == "plain":
        path = plain
    elif wrap == "trainer_dict":  # as the official training script saves best_model.pth
        path = tmp_path / "best_model.pth"
        opt = torch.optim.AdamW(model.parameters())
        torch.save({"epoch": 3, "model_state_dict": state, "optimizer_state_dict": opt.state_dict(), "best_score": 0.9}, path)
    elif wrap == "ddp_prefix":
        path = tmp_path / "ddp.pt"
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "student.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = load_model(path)
    assert loaded.arch == "fiqa_edgenext_xxs" and loaded.input_size == 352
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_swin_teacher_is_recognised(tmp_path):
    path = tmp_path / "FIQA_Swin_B.pt"
    torch.save(OfficialSwinB().state_dict(), path)
    state, _ = read_checkpoint(path)
    assert detect_arch(state) == "fiqa_swin_b"


def test_own_checkpoints_carry_arch_and_preprocessing(tmp_path):
    model = create_model("timm:resnet18")
    spec = PreprocessSpec(input_size=128, resize=176)
    for suffix in (".safetensors", ".pt"):
        path = save_checkpoint(model, tmp_path / f"r18{suffix}", arch="timm:resnet18", spec=spec)
        loaded = load_model(path)
        assert (loaded.arch, loaded.spec) == ("timm:resnet18", spec)
        assert load_model(path, input_size=256).spec == PreprocessSpec(input_size=256, resize=352)
        umask = os.umask(0)
        os.umask(umask)
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # readable by others, like any file written
    assert load_model(path, arch="timm:resnet18").input_size == 128


def test_wrong_architecture_names_keys_and_shapes(official_student):
    _, path = official_student
    with pytest.raises(CheckpointError) as info:
        load_model(path, arch="fiqa_swin_b")
    msg = str(info.value)
    assert str(path) in msg and "does not fit fiqa_swin_b" in msg
    assert "missing keys: feature_extraction.feature_extraction" in msg
    assert "\n" not in msg


def test_shape_mismatch_is_reported(tmp_path, official_student):
    model, _ = official_student
    state = dict(model.state_dict())
    state["quality.1.weight"] = torch.zeros(1, 64)
    path = tmp_path / "bad_head.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"quality.1.weight \(1, 64\) vs \(1, 128\)"):
        load_model(path, arch="fiqa_edgenext_xxs")


def test_unrecognised_checkpoint_asks_for_arch(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(create_model("timm:resnet18").state_dict(), path)
    with pytest.raises(CheckpointError, match="pass --arch"):
        load_model(path)
    assert load_model(path, arch="timm:resnet18").arch == "timm:resnet18"


def test_damaged_and_unsafe_files_are_refused(tmp_path, official_student):
    _, good = official_student
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:5000])
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    unsafe = tmp_path / "unsafe.pt"
    unsafe.write_bytes(pickle.dumps(CheckpointError("code, not weights")))
    for path in (truncated, text, unsafe):
        with pytest.raises(CheckpointError, match="not a readable checkpoint") as info:
            load_model(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "absent.pt")
    empty = tmp_path / "empty_dict.pt"
    torch.save({}, empty)
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        load_model(empty)

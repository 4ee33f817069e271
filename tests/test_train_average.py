"""train average: the weighted mean of like checkpoints, and clear refusals of unlike ones."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from fiqa_edge.cli import main
from fiqa_edge.errors import CheckpointError
from fiqa_edge.preprocess import PreprocessSpec
from fiqa_edge.train.average import average_checkpoints
from fiqa_edge.zoo import create_model, load_model
from fiqa_edge.zoo.checkpoint import read_checkpoint, save_checkpoint

ARCH = "fiqa_edgenext_xxs"
SPEC = PreprocessSpec(input_size=192, resize=264)


def _student(path, seed, spec=SPEC, framing=None):
    torch.manual_seed(seed)
    return save_checkpoint(create_model(ARCH), path, arch=ARCH, spec=spec, framing=framing)


def test_average_is_the_weighted_mean_and_keeps_preprocessing_and_framing(tmp_path):
    framing = load_model("demo").framing
    a = _student(tmp_path / "a.safetensors", 0, framing=framing)
    b = _student(tmp_path / "b.safetensors", 1, framing=framing)
    out = average_checkpoints([a, b], tmp_path / "ab.safetensors", weights=[3, 1])
    (sa, _), (sb, _), (avg, meta) = read_checkpoint(a), read_checkpoint(b), read_checkpoint(out)
    assert avg.keys() == sa.keys()
    for k, v in avg.items():
        assert v.dtype == sa[k].dtype
        torch.testing.assert_close(v, 0.75 * sa[k] + 0.25 * sb[k])
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)  # two different students, so the mean is one of neither
    assert meta["arch"] == ARCH
    assert meta["preprocessing"] == SPEC
    assert meta["framing"] == framing
    assert load_model(out).model(torch.zeros(1, 3, 192, 192)).shape[0] == 1


def test_the_cli_averages_a_bundled_name_with_a_file_and_drops_the_score_scale(tmp_path):
    demo = load_model("demo")
    torch.manual_seed(0)
    shifted = create_model(demo.arch)
    shifted.load_state_dict({k: v + torch.randn_like(v) * 0.01 if v.is_floating_point() else v
                             for k, v in demo.model.state_dict().items()})
    other = save_checkpoint(shifted, tmp_path / "other.safetensors", arch=demo.arch, spec=demo.spec, framing=demo.framing)
    out = tmp_path / "soup.safetensors"
    result = CliRunner().invoke(main, ["train", "average", "-m", "demo", "-m", str(other), "--out", str(out)])
    assert result.exit_code == 0, result.output
    soup = load_model(out)
    assert demo.scale is not None and soup.scale is None
    assert soup.framing == demo.framing and soup.spec == demo.spec
    mine = shifted.state_dict()
    moved = 0
    for (k, v), w in zip(demo.model.state_dict().items(), soup.model.state_dict().values(), strict=True):
        if v.is_floating_point():
            torch.testing.assert_close(w, (v + mine[k]) / 2, msg=k)
            moved += not torch.equal(w, v)
    assert moved > 100  # the soup is neither of the two


def test_unlike_checkpoints_and_bad_weights_are_refused_by_name(tmp_path):
    a = _student(tmp_path / "a.safetensors", 0)
    other_size = _student(tmp_path / "b.safetensors", 1, spec=PreprocessSpec(input_size=128, resize=176))
    with pytest.raises(CheckpointError, match=r"b\.safetensors: preprocessing"):
        average_checkpoints([a, other_size], tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints([a], tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="one weight per checkpoint"):
        average_checkpoints([a, a], tmp_path / "x.safetensors", weights=[1.0])
    with pytest.raises(ValueError, match="non-negative"):
        average_checkpoints([a, a], tmp_path / "x.safetensors", weights=[1.0, -0.5])
    assert not (tmp_path / "x.safetensors").exists()
    result = CliRunner().invoke(main, ["train", "average", "-m", str(a), "-m", str(a), "--weights", "1,x", "--out", "y.st"])
    assert result.exit_code == 2 and "'--weights': 'x' is not a number" in result.output
    result = CliRunner().invoke(main, ["train", "average", "-m", str(a), "-m", str(other_size), "--out", str(tmp_path / "y")])
    assert result.exit_code == 1 and "b.safetensors: preprocessing" in result.output

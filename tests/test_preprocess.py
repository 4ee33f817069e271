"""The numpy preprocessing equals the torch (torchvision) one, and both follow the spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from fiqa_edge.imaging import load_image
from fiqa_edge.preprocess import PreprocessSpec, preprocess, preprocess_batch, resized_size
from fiqa_edge.train.transforms import eval_transform, train_transform


@pytest.mark.parametrize("size", [352, 448, 64])
def test_numpy_matches_torch_on_real_faces(faces, size):
    spec = PreprocessSpec(input_size=size)
    t = eval_transform(spec)
    for path in faces[::4]:
        image = load_image(path)
        ours = preprocess(image, spec)
        ref = t(image).numpy()
        assert ours.shape == ref.shape == (3, size, size)
        assert ours.dtype == np.float32
        assert np.abs(ours - ref).max() <= 1e-6


@pytest.mark.parametrize("kind", ["orl_pgm", "grey", "rgba", "palette", "cmyk", "grey16", "exif_rot", "wide"])
def test_numpy_matches_torch_on_odd_inputs(odd_images, kind):
    spec = PreprocessSpec(input_size=352)
    image = load_image(odd_images[kind])
    assert image.mode == "RGB"
    assert np.abs(preprocess(image, spec) - eval_transform(spec)(image).numpy()).max() <= 1e-6


@pytest.mark.parametrize("wh", [(250, 250), (92, 112), (400, 170), (171, 400), (1, 1), (3, 1000), (353, 352)])
def test_resized_size_matches_torchvision(wh):
    w, h = wh
    image = Image.new("RGB", (w, h))
    expected = TF.resize(image, 352).size
    assert resized_size(w, h, 352) == expected


def test_centre_crop_offsets_follow_torchvision_rounding():
    # a 353-wide resize leaves one spare column; torchvision's round() picks offset 0 (half to even)
    gradient = np.tile(np.arange(353, dtype=np.uint8), (352, 1))
    image = Image.fromarray(np.stack([gradient] * 3, axis=-1), "RGB")
    spec = PreprocessSpec(input_size=352)
    ref = eval_transform(spec)(image).numpy()
    ours = preprocess(image, spec)
    assert np.array_equal(ours, ref)


def test_normalisation_values():
    spec = PreprocessSpec(input_size=4)
    image = Image.new("RGB", (4, 4), (255, 0, 128))
    out = preprocess(image, spec)
    expected = (np.array([1.0, 0.0, 128 / 255]) - np.array(spec.mean)) / np.array(spec.std)
    assert np.allclose(out[:, 0, 0], expected, atol=1e-6)


def test_train_transform_crops_randomly_to_size(faces):
    spec = PreprocessSpec(input_size=200, resize=240)
    image = load_image(faces[0])
    torch.manual_seed(0)
    a = train_transform(spec)(image)
    b = train_transform(spec)(image)
    assert a.shape == b.shape == (3, 200, 200)
    assert not torch.equal(a, b)


def test_batch_and_empty_batch(faces):
    spec = PreprocessSpec(input_size=64)
    images = [load_image(p) for p in faces[:3]]
    assert preprocess_batch(images, spec).shape == (3, 3, 64, 64)
    assert preprocess_batch([], spec).shape == (0, 3, 64, 64)


def test_spec_round_trip_and_validation():
    spec = PreprocessSpec(input_size=288, resize=320)
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown preprocessing keys"):
        PreprocessSpec.from_dict({**spec.to_dict(), "flip": True})
    with pytest.raises(ValueError, match="interpolation"):
        PreprocessSpec(input_size=8, interpolation="nearest-ish")
    with pytest.raises(ValueError, match="at least input_size"):
        PreprocessSpec(input_size=352, resize=300)


def test_rejects_non_rgb_image():
    with pytest.raises(ValueError, match="expected an RGB image"):
        preprocess(Image.new("L", (8, 8)), PreprocessSpec(input_size=8))


def test_normalisation_table_equals_the_arithmetic_bit_for_bit():
    from fiqa_edge.preprocess import _normalisation_table

    spec = PreprocessSpec(input_size=8)
    pixels = np.arange(256, dtype=np.uint8)
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    expected = (pixels.astype(np.float32)[:, None] / np.float32(255.0) - mean) / std
    assert np.array_equal(_normalisation_table(spec.mean, spec.std).T, expected)

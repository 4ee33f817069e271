"""Decoding: every mode becomes upright 8-bit RGB; every failure is one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fiqa_edge.errors import ImageError
from fiqa_edge.imaging import load_image


def test_exif_rotation_is_applied(odd_images, faces):
    upright = np.asarray(Image.open(faces[0]).convert("RGB"), dtype=np.int16)
    rotated = np.asarray(load_image(odd_images["exif_rot"]), dtype=np.int16)
    assert rotated.shape == upright.shape
    assert np.abs(rotated - upright).mean() < 3  # JPEG re-encoding noise only


def test_16_bit_greyscale_is_scaled_not_clipped(odd_images, faces, tmp_path):
    grey8 = np.asarray(Image.open(faces[0]).convert("L"), dtype=np.int16)
    decoded = np.asarray(load_image(odd_images["grey16"]))
    assert decoded.shape == grey8.shape + (3,)
    assert np.array_equal(decoded[..., 0], grey8)
    ramp = tmp_path / "ramp16.png"  # values a clipping conversion maps to 255 from 255 up
    Image.fromarray(np.array([[0, 257, 32896, 65535]], dtype=np.uint16)).save(ramp)
    assert np.asarray(load_image(ramp))[0, :, 0].tolist() == [0, 1, 128, 255]
    assert np.asarray(Image.open(ramp).convert("L"))[0].tolist() != [0, 1, 128, 255]  # Pillow's own conversion clips


@pytest.mark.parametrize("kind", ["orl_pgm", "grey", "rgba", "palette", "cmyk"])
def test_modes_decode_to_rgb(odd_images, kind):
    image = load_image(odd_images[kind])
    assert image.mode == "RGB"
    assert np.asarray(image).std() > 10  # a real face, not a blank


@pytest.mark.parametrize(
    "kind, problem",
    [
        ("empty", "not an image"),
        ("text", "not an image"),
        ("truncated", "damaged or truncated"),
        ("missing", "no such file"),
        ("directory", "is a directory"),
    ],
)
def test_bad_files_give_one_line_naming_the_file(bad_files, kind, problem):
    with pytest.raises(ImageError) as info:
        load_image(bad_files[kind])
    message = str(info.value)
    assert str(bad_files[kind]) in message
    assert problem in message
    assert "\n" not in message


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(ImageError, match="too large"):
        load_image(path)

"""Shared fixtures: real faces from the package, odd-format copies, official-layout checkpoints."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fiqa_edge.assets import sample_faces

DATA = Path(__file__).parent / "data"
ORL = sorted((DATA / "orl").glob("*/*.pgm"))


@pytest.fixture(scope="session")
def faces() -> list[Path]:
    paths = sample_faces()
    assert len(paths) == 40
    return paths


@pytest.fixture(scope="session")
def odd_images(tmp_path_factory: pytest.TempPathFactory, faces: list[Path]) -> dict[str, Path]:
    """One real face saved in each awkward form a user may hand us."""
    out = tmp_path_factory.mktemp("odd")
    face = Image.open(faces[0]).convert("RGB")
    grey = face.convert("L")
    made: dict[str, Path] = {"orl_pgm": ORL[0]}
    made["grey"] = out / "grey.png"
    grey.save(made["grey"])
    made["rgba"] = out / "rgba.png"
    rgba = face.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(face.size))
    rgba.save(made["rgba"])
    made["palette"] = out / "palette.png"
    face.convert("P", palette=Image.Palette.ADAPTIVE).save(made["palette"])
    made["cmyk"] = out / "cmyk.jpg"
    face.convert("CMYK").save(made["cmyk"], quality=95)
    made["grey16"] = out / "grey16.png"
    Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257).save(made["grey16"])
    made["exif_rot"] = out / "exif_rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    face.transpose(Image.Transpose.ROTATE_90).save(made["exif_rot"], exif=exif, quality=95)
    made["wide"] = out / "wide.jpg"
    face.resize((400, 170)).save(made["wide"], quality=95)
    return made


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory, faces: list[Path]) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bad")
    good = faces[0].read_bytes()
    files = {
        "empty": (out / "empty.jpg", b""),
        "text": (out / "notes.jpg", b"not an image at all\n"),
        "truncated": (out / "truncated.jpg", good[: len(good) // 3]),
    }
    for path, data in files.values():
        path.write_bytes(data)
    result = {k: p for k, (p, _) in files.items()}
    result["missing"] = out / "missing.jpg"
    result["directory"] = out / "folder.jpg"
    result["directory"].mkdir()
    return result


@pytest.fixture(scope="session")
def official_student(tmp_path_factory: pytest.TempPathFactory):
    """(model, path) of an official-layout EdgeNeXt-XXS saved as torch.save(state_dict)."""
    import torch
    from official_reference import OfficialEdgeNeXtXXS, spread_outputs

    torch.manual_seed(0)
    model = spread_outputs(OfficialEdgeNeXtXXS(), seed=1)
    path = tmp_path_factory.mktemp("ckpt") / "FIQA_EdgeNeXt_XXS.pt"
    torch.save(model.state_dict(), path)
    return model, path


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()

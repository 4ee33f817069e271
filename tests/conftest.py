"""Shared fixtures: real faces from the package, odd-format copies, official-layout checkpoints; the test tiers.

``pytest -q`` runs the fast tier; ``pytest -q --heavy`` runs the tests marked ``heavy`` (the full builds of the
bundled model and what needs them, the browser, torchrun, fresh venvs, dlib labels) instead.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fiqa_edge.assets import sample_faces

DATA = Path(__file__).parent / "data"
ORL = sorted((DATA / "orl").glob("*/*.pgm"))
#: faces no default calibration saw: the sample faces of the 5 validation people, and ORL's
HELD_OUT = sample_faces("validation") + ORL


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--heavy", action="store_true",
                     help="run the heavy tier (tests marked heavy) instead of the fast one; CI runs both")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tier asked for: the fast one by default, the tests marked heavy with --heavy."""
    heavy = config.getoption("--heavy")
    keep, drop = [], []
    for item in items:
        (keep if (item.get_closest_marker("heavy") is not None) == heavy else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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


@pytest.fixture(scope="session")
def default_bundles(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The bundled model converted once, as the main job does, to every target this machine builds and runs
    (default options and calibration faces; validated on :data:`HELD_OUT`): ConvertResults by
    ``<target>-<precision>``. The parity, bundle, mobile and web tests of the heavy tier share it."""
    if not request.config.getoption("--heavy"):
        pytest.fail("default_bundles takes minutes to build: mark the test that asks for it @pytest.mark.heavy")
    from fiqa_edge.assets import DEFAULT_MODEL
    from fiqa_edge.converters.convert import convert
    from fiqa_edge.converters.targets import TARGETS
    from fiqa_edge.zoo import load_model

    keys = [k for k, t in TARGETS.items() if t.unavailable() is None and t.cannot_validate() is None]
    folder = tmp_path_factory.mktemp("held-out")
    validation = []
    for path in HELD_OUT:  # ORL's PGMs as PNGs, the same pixels, so that the browser can decode them too
        if path.suffix == ".pgm":
            png = folder / f"{path.parent.name}-{path.stem}.png"
            Image.open(path).save(png)
            path = png
        validation.append(path)
    results = convert(load_model(DEFAULT_MODEL), keys, out=tmp_path_factory.mktemp("default-bundles"), validation=validation)
    return {f"{r.target}-{r.precision}": r for r in results}


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()

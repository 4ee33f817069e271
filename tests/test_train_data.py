"""Label files, image lists, degradations and the dataset's handling of bad images."""

from __future__ import annotations

import logging
import shutil
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from fiqa_edge.assets import SAMPLES_DIR
from fiqa_edge.degrade import CRISP_KINDS, DEGRADATIONS, LABEL_KINDS, apply, open_image_ref, parse_ref, sample_degradation
from fiqa_edge.errors import FiqaError
from fiqa_edge.imaging import load_image
from fiqa_edge.preprocess import PreprocessSpec
from fiqa_edge.train.data import (
    FaceDataset,
    Item,
    PhotoBatchSampler,
    collate_skip_bad,
    read_image_list,
    read_labels,
    split_items,
)
from fiqa_edge.train.transforms import eval_transform


@pytest.fixture()
def root(tmp_path, faces):
    for p in faces[:6]:
        shutil.copy(p, tmp_path / p.name)
    Image.open(faces[6]).save(tmp_path / "official_name.png")
    return tmp_path


def test_labels_with_and_without_header(root, faces):
    names = [p.name for p in faces[:3]]
    (root / "with.csv").write_text("image,score\n" + "".join(f"{n},{i / 10}\n" for i, n in enumerate(names)))
    (root / "without.csv").write_text("".join(f"{n},{i / 10}\n" for i, n in enumerate(names)))
    assert read_labels(root / "with.csv", root) == read_labels(root / "without.csv", root)
    assert [it.score for it in read_labels(root / "with.csv", root)] == [0.0, 0.1, 0.2]


def test_official_names_without_extension_mean_png(root):
    (root / "train.csv").write_text("official_name,0.5\n")
    assert read_labels(root / "train.csv", root) == [Item("official_name.png", 0.5)]


def test_missing_images_are_named_and_left_out(root, faces, caplog):
    (root / "l.csv").write_text(f"{faces[0].name},0.1\nghost.jpg,0.2\n{faces[1].name},0.3\n")
    with caplog.at_level(logging.WARNING):
        items = read_labels(root / "l.csv", root)
    assert [it.image for it in items] == [faces[0].name, faces[1].name]
    assert "ghost.jpg: no such image" in caplog.text


def test_bad_label_rows_stop_with_the_line(root, faces):
    (root / "l.csv").write_text(f"image,score\n{faces[0].name},high\n")
    with pytest.raises(FiqaError, match=r"l.csv:2: score 'high' is not a number"):
        read_labels(root / "l.csv", root)
    (root / "none.csv").write_text("ghost.jpg,0.1\n")
    with pytest.raises(FiqaError, match="none of its images exist"):
        read_labels(root / "none.csv", root)


def test_image_list_from_folder_and_csv(root, faces):
    from_dir = read_image_list(root, root)
    assert len(from_dir) == 7 and all(np.isnan(it.score) for it in from_dir)
    (root / "u.csv").write_text(f"image\n{faces[0].name}\n{faces[0].name}#blur=2.0\n")
    assert [it.image for it in read_image_list(root / "u.csv", root)] == [faces[0].name, f"{faces[0].name}#blur=2.0"]


def test_split_is_seeded_and_disjoint():
    items = [Item(f"{i}.jpg", i) for i in range(50)]
    a_train, a_val = split_items(items, 0.2, seed=3)
    b_train, b_val = split_items(items, 0.2, seed=3)
    assert a_val == b_val and len(a_val) == 10
    assert not {it.image for it in a_train} & {it.image for it in a_val}
    assert split_items(items, 0.2, seed=4)[1] != a_val


def test_degraded_copies_are_reproducible_and_graded(faces):
    ref = f"{faces[0].name}"
    root = faces[0].parent
    assert parse_ref(f"{ref}#jpeg=10.0") == (ref, "jpeg", 10.0)
    for kind in DEGRADATIONS:
        a = np.asarray(open_image_ref(f"{ref}#{kind}={DEGRADATIONS[kind].strongest}", root))
        b = np.asarray(open_image_ref(f"{ref}#{kind}={DEGRADATIONS[kind].strongest}", root))
        assert np.array_equal(a, b), kind
    clean = np.asarray(load_image(faces[0]).convert("L"), dtype=np.float64)

    def detail(x):  # high-frequency energy
        return np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()

    blurs = [detail(np.asarray(apply(load_image(faces[0]), "blur", s).convert("L"), dtype=np.float64)) for s in (1, 2, 4)]
    assert detail(clean) > blurs[0] > blurs[1] > blurs[2]
    errors = [np.abs(np.asarray(apply(load_image(faces[0]), "noise", s), dtype=np.float64) - np.asarray(load_image(faces[0]))).mean()
              for s in (5, 20, 40)]
    assert errors[0] < errors[1] < errors[2]


def test_crisp_copies_keep_the_detail_that_blur_takes(faces):
    """Sharpening, resampling, noise reduction and high-quality JPEG, at their strongest: a few levels from the
    clean face and at least 80 % of its fine detail; a blur of 1.5 px keeps less than 70 %."""
    image = load_image(faces[0])
    clean = np.asarray(image, dtype=np.float64)

    def detail(x):
        return np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()

    for kind in CRISP_KINDS:
        copy = np.asarray(apply(image, kind, DEGRADATIONS[kind].strongest, seed_text="x"), dtype=np.float64)
        assert np.abs(copy - clean).mean() < 5 and detail(copy) > 0.8 * detail(clean), kind
    assert detail(np.asarray(apply(image, "blur", 1.5), dtype=np.float64)) < 0.7 * detail(clean)


def test_dataset_skips_an_image_that_fails_to_decode(root, faces, caplog):
    (root / "broken.jpg").write_bytes(faces[0].read_bytes()[:500])
    items = [Item(faces[0].name, 0.1), Item("broken.jpg", 0.2), Item(faces[1].name, 0.3)]
    ds = FaceDataset(items, root, eval_transform(PreprocessSpec(input_size=32)))
    with caplog.at_level(logging.WARNING):
        batch = collate_skip_bad([ds[i] for i in range(3)])
    images, scores, index = batch
    assert images.shape == (2, 3, 32, 32)
    assert index.tolist() == [0, 2] and torch.allclose(scores, torch.tensor([0.1, 0.3]))
    assert "broken.jpg" in caplog.text
    assert collate_skip_bad([None]) is None


def test_photo_batches_hold_every_copy_of_a_photo_once_per_epoch():
    items = [Item(f"p{p}.jpg" + (f"#noise={10 * c}" if c else ""), 0.5) for p in range(23) for c in range(p % 4 + 1)]
    photo = [parse_ref(it.image)[0] for it in items]
    sampler = PhotoBatchSampler(items, 8, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(items)))
    for b in batches:
        inside = {photo[i] for i in b}
        assert sum(photo.count(p) for p in inside) == len(b)  # no photo split across batches
    assert all(len(b) >= 8 for b in batches[:-1]) and len(sampler) == len(batches)
    assert list(PhotoBatchSampler(items, 8, seed=3)) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches
    ranks = [list(PhotoBatchSampler(items, 8, seed=3, rank=r, world=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) >= 1
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}


def test_photo_batches_can_cut_a_photos_copies_into_pairs():
    items = [Item(f"p{p}.jpg" + (f"#blur={c}" if c else ""), 0.5) for p in range(30) for c in range(5)]
    photo = [parse_ref(it.image)[0] for it in items]
    whole, pairs = list(PhotoBatchSampler(items, 10, seed=1)), list(PhotoBatchSampler(items, 10, seed=1, copies=2))
    assert sorted(i for b in pairs for i in b) == list(range(len(items)))
    assert all(max(Counter(photo[i] for i in b).values()) >= 2 for b in pairs)  # pairs to rank in every batch
    assert sum(len({photo[i] for i in b}) for b in pairs) / len(pairs) > sum(len({photo[i] for i in b}) for b in whole) / len(whole)
    with pytest.raises(FiqaError, match="at least 2"):
        PhotoBatchSampler(items, 10, seed=1, copies=1)


def test_label_copies_come_from_the_label_kinds_unless_told():
    rng = np.random.default_rng(0)
    assert {sample_degradation(rng)[0] for _ in range(400)} == set(LABEL_KINDS)
    drawn = [sample_degradation(rng, ("softnoise",)) for _ in range(50)]
    assert {k for k, _ in drawn} == {"softnoise"} and all(6.0 <= s <= 50.0 for _, s in drawn)


def test_soft_kinds_soften_before_they_degrade():
    face = load_image(next(SAMPLES_DIR.rglob("*.jpg")))
    for soft, plain, strength in (("softnoise", "noise", 6.0), ("softjpeg", "jpeg", 40.0)):
        a = np.asarray(apply(face, soft, strength, seed_text="x"), dtype=np.float32)
        b = np.asarray(apply(face, plain, strength, seed_text="x"), dtype=np.float32)
        assert np.abs(a - b).mean() > 2.0  # not the plain kind
        assert np.abs(np.diff(a, axis=1)).mean() < np.abs(np.diff(b, axis=1)).mean()  # less fine detail

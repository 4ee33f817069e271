"""The score scale: percentiles and the 0-100 value measured on reference faces' scores."""

from __future__ import annotations

import numpy as np
import pytest

from fiqa_edge.errors import FiqaError
from fiqa_edge.score_scale import MIN_REFERENCE_FACES, ScoreScale


def test_too_few_reference_faces_are_refused_in_one_line():
    with pytest.raises(FiqaError, match=r"^40 sample faces: 40 faces scored, too few .* \(at least 100\)$"):
        ScoreScale.from_scores(np.linspace(0, 1, 40), "40 sample faces")
    with pytest.raises(FiqaError, match="not finite"):
        ScoreScale.from_scores([*np.linspace(0, 1, MIN_REFERENCE_FACES), np.nan], "faces")


def test_percentile_is_the_share_of_reference_faces_below():
    rng = np.random.default_rng(0)
    scores = rng.normal(0.6, 0.05, 2000)
    scale = ScoreScale.from_scores(scores, "2000 faces")
    probes = rng.normal(0.6, 0.07, 300)
    empirical = np.array([(scores < p).mean() * 100 for p in probes])
    assert np.abs(np.array([scale.percentile(p) for p in probes]) - empirical).max() < 1.5
    assert scale.percentile(scores.min() - 1) == 0 and scale.percentile(scores.max() + 1) == 100


def test_quality_is_monotone_and_matches_the_quartiles():
    scale = ScoreScale.from_scores(np.random.default_rng(1).normal(0.5, 0.1, 500), "500 faces")
    q1, median, q3 = scale.percentiles[24], scale.median, scale.percentiles[74]
    assert scale.quality(median) == pytest.approx(50)
    assert scale.quality(q1) == pytest.approx(25, abs=1.5) and scale.quality(q3) == pytest.approx(75, abs=1.5)  # symmetric data
    values = [scale.quality(s) for s in np.linspace(-1, 2, 200)]
    assert all(b >= a for a, b in zip(values, values[1:])) and 0 <= values[0] < values[-1] <= 100


def test_round_trip():
    scale = ScoreScale.from_scores(np.arange(150) / 150, "150 faces")
    assert ScoreScale.from_dict(scale.to_dict()) == scale
    with pytest.raises(ValueError, match="percentiles 1-99"):
        ScoreScale.from_dict({**scale.to_dict(), "percentiles": [0.1, 0.2]})


def test_scorer_results_carry_percentile_and_quality_only_with_a_scale():
    from dataclasses import replace

    from fiqa_edge.assets import DEFAULT_BUNDLE, SAMPLES_DIR
    from fiqa_edge.scorer import QualityScorer

    scorer = QualityScorer.load(DEFAULT_BUNDLE)
    paths = sorted(SAMPLES_DIR.glob("*/*.jpg"))
    plain = list(scorer.score_paths(paths))
    assert scorer.scale is None and all(r.percentile is None and r.quality is None for r in plain)
    scores = np.array([r.score for r in plain])
    scale = ScoreScale.from_scores(np.resize(scores, 120) + np.linspace(-1e-3, 1e-3, 120), "the samples, thrice")
    scorer.backend.manifest = replace(scorer.backend.manifest, scale=scale)
    placed = list(scorer.score_paths(paths))
    assert [r.percentile for r in placed] == [scale.percentile(s) for s in scores]
    assert [r.quality for r in placed] == [scale.quality(s) for s in scores]
    best = max(placed, key=lambda r: r.score)
    assert best.percentile > 95 and best.quality == max(r.quality for r in placed)

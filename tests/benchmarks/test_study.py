"""The study's statistics: the paired two-level bootstrap and the decision rule's verdicts."""

import numpy as np
import pytest

from benchmarks.study import LEVERS, main, paired_bootstrap, verdict_zero_shot


def _hits(rng, n, p):
    return (rng.random(n) < p).astype(int)


def test_identical_models_differ_by_exactly_nothing():
    rng = np.random.default_rng(0)
    a = [_hits(rng, 96, 0.6) for _ in range(5)]
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)


def test_a_real_lead_is_found_and_its_interval_narrows_with_clips():
    rng = np.random.default_rng(1)

    def pair(n):
        base = [_hits(rng, n, 0.5) for _ in range(5)]
        # ALT right wherever the baseline is, and on a fifth of the rest: +10 points.
        better = [np.maximum(b, _hits(rng, n, 0.2)) for b in base]
        return better, base

    small = paired_bootstrap(*pair(40))
    large = paired_bootstrap(*pair(2000))
    assert 8 < large[0] < 12 and large[1] > 0 and large[1] < large[0] < large[2]
    assert (small[2] - small[1]) > 2 * (large[2] - large[1])
    # Reversed roles give the mirrored interval.
    a, b = pair(500)
    forward, backward = paired_bootstrap(a, b), paired_bootstrap(b, a)
    assert forward[0] == -backward[0] and forward[1] > 0 > backward[2]


def test_seeds_that_disagree_widen_the_interval_past_zero():
    rng = np.random.default_rng(2)
    base = [_hits(rng, 1000, 0.5) for _ in range(5)]
    # Large per-seed leads of either sign: every seed's clips say "different", the seeds don't.
    swings = [0.3, -0.3, 0.3, -0.3, 0.05]
    alt = [np.where(rng.random(1000) < abs(s), int(s > 0), b) for b, s in zip(base, swings)]
    point, lo, hi = paired_bootstrap(alt, base)
    assert lo < 0 < hi and hi - lo > 10


def test_the_zero_shot_verdicts_follow_the_rule():
    assert verdict_zero_shot(6.0, 1.0, 11.0) == "holds"
    assert verdict_zero_shot(3.0, 0.5, 6.0) == "ahead, under 5 points"
    assert verdict_zero_shot(6.0, -1.0, 12.0) == "ahead, not shown"
    assert verdict_zero_shot(-6.0, -11.0, -1.0) == "behind"
    assert verdict_zero_shot(-1.0, -5.0, 3.0) == "no difference shown"


def test_a_lever_named_wrong_is_refused_before_anything_is_scored(tmp_path, capsys):
    """The test clips are scored once: a misspelt lever must not cost that run."""
    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path / "study"), "--levers-test", "x0.5", next(iter(LEVERS))])
    assert stop.value.code == 2 and "invalid choice: 'x0.5'" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()

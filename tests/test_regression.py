"""Regression check: flagged beyond the noise, not within it; missing and new points."""
from __future__ import annotations

import dataclasses
import math

import pytest

from planner.core.profiles import ProfileRow
from planner.profiling.regression import compare_profiles, format_report


def _row(p50: float, cv: float | None = 0.02, samples: int | None = 100, **changes) -> ProfileRow:
    row = ProfileRow("m", "t4", "fp16", 8, p50, p50 * 2, 1000.0, 0.2, 0.001, 0.0, "measured",
                     samples=samples, latency_cv=cv, device_fingerprint="gpu-a",
                     framework_version="torch 2.5.1")
    return dataclasses.replace(row, **changes)


def test_noise_formula():
    # se_rel = sqrt(pi/2) x 0.02 / sqrt(100) for each; noise = 3 x sqrt(2) x se_rel x 100
    (c,) = compare_profiles([_row(1.0)], [_row(1.0)]).comparisons
    expected = 3 * math.sqrt(2) * math.sqrt(math.pi / 2) * 0.02 / 10 * 100
    assert c.noise_pct == pytest.approx(expected)   # ~1.06 %
    assert not c.noise_assumed


def test_regression_beyond_noise_is_flagged_and_versions_are_ignored():
    current = [_row(1.10, device_fingerprint="gpu-b", framework_version="torch 2.6.0")]
    report = compare_profiles(current, [_row(1.0)])
    (c,) = report.comparisons
    assert c.change_pct == pytest.approx(10.0)
    assert c.regressed and not c.improved
    assert report.regressions == (c,)


def test_change_within_noise_is_not_flagged():
    # Noisy rows: cv 0.30, n 10 -> noise = 3 x sqrt(2) x 1.2533 x 0.30/sqrt(10) x 100 ~ 50 %.
    current, baseline = _row(1.20, cv=0.30, samples=10), _row(1.0, cv=0.30, samples=10)
    (c,) = compare_profiles([current], [baseline]).comparisons
    assert c.change_pct == pytest.approx(20.0)
    assert c.noise_pct > 20.0
    assert not c.regressed and not c.improved


def test_change_below_min_change_is_not_flagged_even_with_no_noise():
    (c,) = compare_profiles([_row(1.04, cv=0.0)], [_row(1.0, cv=0.0)]).comparisons
    assert c.noise_pct == 0.0 and not c.regressed
    (c,) = compare_profiles([_row(1.04, cv=0.0)], [_row(1.0, cv=0.0)], min_change_pct=3.0).comparisons
    assert c.regressed


def test_improvement_is_flagged():
    (c,) = compare_profiles([_row(0.8)], [_row(1.0)]).comparisons
    assert c.improved and not c.regressed and c.change_pct == pytest.approx(-20.0)


def test_missing_cv_or_samples_uses_the_assumed_noise():
    bare = _row(1.0, cv=None, samples=None)
    (c,) = compare_profiles([bare], [bare]).comparisons
    assert c.noise_assumed
    se_assumed = math.sqrt(math.pi / 2) * 0.05 / math.sqrt(30)
    assert c.noise_pct == pytest.approx(3 * math.sqrt(2) * se_assumed * 100)   # ~4.85 %
    # Each missing value is replaced on its own: cv 0.05 with the row's n=100, cv 0.02 with n=30.
    (c,) = compare_profiles([_row(1.0, cv=None)], [_row(1.0, samples=None)]).comparisons
    se_cur, se_base = 0.05 / math.sqrt(100), 0.02 / math.sqrt(30)
    assert c.noise_assumed
    assert c.noise_pct == pytest.approx(3 * math.sqrt(math.pi / 2) * math.hypot(se_cur, se_base) * 100)


def test_missing_and_new_points():
    baseline = [_row(1.0), _row(1.0, batch_size=16)]
    current = [_row(1.0), _row(1.0, mode="training_step")]
    report = compare_profiles(current, baseline)
    assert len(report.comparisons) == 1
    assert report.missing_in_current == (("m", "t4", "fp16", 16, 1.0, "inference"),)
    assert report.new_in_current == (("m", "t4", "fp16", 8, 1.0, "training_step"),)


def test_format_report_lists_regressions_first():
    baseline = [_row(1.0, batch_size=b) for b in (1, 2, 4)] + [_row(1.0, batch_size=64)]
    current = [_row(1.01, batch_size=1), _row(1.5, batch_size=2), _row(0.5, batch_size=4),
               _row(1.0, batch_size=32, cv=None)]
    text = format_report(compare_profiles(current, baseline))
    lines = text.splitlines()
    assert lines[0].split()[0] == "point"
    assert "b2" in lines[1] and "REGRESSED" in lines[1] and "+50.0%" in lines[1]
    assert "b4" in lines[2] and "improved" in lines[2]
    assert "b1" in lines[3] and lines[3].rstrip().endswith("ok")
    assert "1 regressed, 1 improved, 3 compared" in text
    assert "missing in current: m t4 fp16 b64 x1" in text
    assert "new in current: m t4 fp16 b32 x1" in text

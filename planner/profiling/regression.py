"""Regression check: compare a profile run with a baseline (``planner profile --compare-to``).

Points are matched on (model, hardware, precision, batch_size, units_per_replica, mode). Device
fingerprint and software versions are ignored on purpose: the question is "did this point get
slower after the upgrade / on the new machine?". If a table holds several rows for one point,
the last one wins (a store lists rows in the order they were written).

The math, per matched point with baseline median b and current median c (per-batch p50, ms)::

    change_pct   = (c - b) / b x 100                         (> 0: slower)
    se_rel(row)  = sqrt(pi/2) x cv / sqrt(n)                  relative standard error of a median
    noise_pct    = z x sqrt(se_rel(base)^2 + se_rel(cur)^2) x 100
    threshold    = max(min_change_pct, noise_pct)
    regressed    = change_pct >  threshold
    improved     = change_pct < -threshold

``cv`` is the row's ``latency_cv`` and ``n`` its ``samples``; sqrt(pi/2) ~ 1.25 is the large-sample
ratio of the median's standard error to the mean's for normally distributed latencies. A row
without ``latency_cv`` is assumed to have cv = 0.05, and one without ``samples`` n = 30 (each
replaced on its own; imports usually lack both). Both rows lacking both gives a noise band of
about 4.9 % at z = 3, just under the default min_change_pct of 5 %. Each comparison records
whether it rests on such an assumption (``noise_assumed``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from planner.core.profiles import ProfileRow

ASSUMED_CV = 0.05
ASSUMED_SAMPLES = 30
_MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)

ComparisonKey = tuple[str, str, str, int, float, str]


def comparison_key(row: ProfileRow) -> ComparisonKey:
    return (row.model, row.hardware, row.precision, row.batch_size, row.units_per_replica, row.mode)


@dataclass(frozen=True)
class PointComparison:
    key: ComparisonKey             # (model, hardware, precision, batch_size, units_per_replica, mode)
    baseline_p50_ms: float
    current_p50_ms: float
    change_pct: float              # > 0: the current run is slower
    noise_pct: float               # z x combined relative standard error, in percent
    regressed: bool
    improved: bool
    noise_assumed: bool = False    # True when a row lacked latency_cv or samples


@dataclass(frozen=True)
class ComparisonReport:
    comparisons: tuple[PointComparison, ...]
    missing_in_current: tuple[ComparisonKey, ...]   # in the baseline, not measured this time
    new_in_current: tuple[ComparisonKey, ...]       # measured this time, not in the baseline

    @property
    def regressions(self) -> tuple[PointComparison, ...]:
        return tuple(c for c in self.comparisons if c.regressed)

    @property
    def improvements(self) -> tuple[PointComparison, ...]:
        return tuple(c for c in self.comparisons if c.improved)


def _relative_se(row: ProfileRow) -> tuple[float, bool]:
    assumed = row.latency_cv is None or not row.samples
    cv = ASSUMED_CV if row.latency_cv is None else row.latency_cv
    n = ASSUMED_SAMPLES if not row.samples else row.samples
    return _MEDIAN_SE_FACTOR * cv / math.sqrt(n), assumed


def _by_key(rows: Sequence[ProfileRow]) -> dict[ComparisonKey, ProfileRow]:
    return {comparison_key(r): r for r in rows}   # later rows win


def compare_profiles(current: Sequence[ProfileRow], baseline: Sequence[ProfileRow],
                     min_change_pct: float = 5.0, z: float = 3.0) -> ComparisonReport:
    """Match points and flag those whose p50 moved by more than both min_change_pct and the noise."""
    now, before = _by_key(current), _by_key(baseline)
    comparisons = []
    for key, base in before.items():
        if key not in now:
            continue
        cur = now[key]
        se_base, assumed_base = _relative_se(base)
        se_cur, assumed_cur = _relative_se(cur)
        change_pct = (cur.latency_p50_ms - base.latency_p50_ms) / base.latency_p50_ms * 100.0
        noise_pct = z * math.hypot(se_base, se_cur) * 100.0
        threshold = max(min_change_pct, noise_pct)
        comparisons.append(PointComparison(
            key=key, baseline_p50_ms=base.latency_p50_ms, current_p50_ms=cur.latency_p50_ms,
            change_pct=change_pct, noise_pct=noise_pct, regressed=change_pct > threshold,
            improved=change_pct < -threshold, noise_assumed=assumed_base or assumed_cur))
    return ComparisonReport(
        comparisons=tuple(comparisons),
        missing_in_current=tuple(k for k in before if k not in now),
        new_in_current=tuple(k for k in now if k not in before))


def _key_text(key: ComparisonKey) -> str:
    model, hardware, precision, batch, units, mode = key
    text = f"{model} {hardware} {precision} b{batch} x{units:g}"
    return text if mode == "inference" else f"{text} {mode}"


def format_report(report: ComparisonReport) -> str:
    """A compact text table: regressions first (largest change first), then the rest."""
    def order(c: PointComparison) -> tuple[int, float]:
        return (0 if c.regressed else 1 if c.improved else 2, -abs(c.change_pct))

    rows = [("point", "base p50 ms", "now p50 ms", "change", "noise", "verdict")]
    for c in sorted(report.comparisons, key=order):
        verdict = "REGRESSED" if c.regressed else "improved" if c.improved else "ok"
        noise = f"+-{c.noise_pct:.1f}%" + ("*" if c.noise_assumed else "")
        rows.append((_key_text(c.key), f"{c.baseline_p50_ms:.3f}", f"{c.current_p50_ms:.3f}",
                     f"{c.change_pct:+.1f}%", noise, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w)
                       in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.append(f"{len(report.regressions)} regressed, {len(report.improvements)} improved, "
                 f"{len(report.comparisons)} compared")
    if any(c.noise_assumed for c in report.comparisons):
        lines.append(f"* noise assumed (cv {ASSUMED_CV}, n {ASSUMED_SAMPLES}): "
                     "a row lacked latency_cv or samples")
    for title, keys in (("missing in current", report.missing_in_current),
                        ("new in current", report.new_in_current)):
        if keys:
            lines.append(f"{title}: " + "; ".join(_key_text(k) for k in keys))
    return "\n".join(lines)

"""Verification results: what a deployed plan measured under load, beside what it predicted.

Pure: the load generator (cluster/loadgen.py) produces latencies; this module
turns them into verify.json's rows and the pass/fail verdict. verify.json is
written and read here only: `write_verification` and `read_verification`, and
`verification_data` for callers that take a report object, its dict or the file.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from planner.core.errors import InputError
from planner.core.io import write_atomically

# Offered Poisson load fluctuates: over a short window the achieved rate may fall
# a few percent short of the target without the server being at fault.
THROUGHPUT_TOLERANCE = 0.10


def quantile_confidence_interval(samples: Sequence[float], q: float = 0.99,
                                 confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Distribution-free interval for the q-quantile from order statistics (binomial).

    The number of samples below the true quantile is Binomial(n, q); the interval is
    [x_(l), x_(u)] with l, u the binomial's (1-c)/2 and (1+c)/2 points. An end is None
    when n is too small to bound it: at n = 64, no sample bounds p99 from above (its
    upper end lies beyond the largest), which is what a short window at low qps gives.
    """
    n = len(samples)
    if n == 0:
        return None, None
    ordered = sorted(samples)
    tail = (1.0 - confidence) / 2.0
    cdf, lower_rank, upper_rank = 0.0, None, None
    log_n_factorial, log_q, log_not_q = math.lgamma(n + 1), math.log(q), math.log1p(-q)
    for k in range(n + 1):
        # Binomial pmf in log space: math.comb(n, k) overflows a float for n in the thousands.
        cdf += math.exp(log_n_factorial - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                        + k * log_q + (n - k) * log_not_q)
        if lower_rank is None and cdf > tail:
            lower_rank = k          # P(B <= k) > tail: x_(k) (1-based) bounds the quantile from below
        if cdf >= 1.0 - tail:
            upper_rank = k + 1      # P(B <= k) >= 1 - tail: x_(k+1) bounds it from above
            break
    lower = ordered[lower_rank - 1] if lower_rank and lower_rank >= 1 else None
    upper = ordered[upper_rank - 1] if upper_rank is not None and upper_rank <= n else None
    return lower, upper


# The band a prediction of p99 states (docs/optimization.md §2): measured within +-25% of it.
PREDICTION_BAND = 0.25


@dataclass(frozen=True)
class WorkloadVerification:
    name: str
    url: str
    qps_target: float
    duration_s: float
    requests: int
    throughput_rps: float
    p50_ms: float | None
    p99_ms: float | None
    p99_ms_target: float | None
    predicted_p99_ms: float
    errors: int
    passed: bool
    notes: str
    planned_batch_size: int | None = None
    # Measured by Serve (ray_serve_actual_batch_size) over the load window, each batch counted at its
    # histogram bucket's upper edge: exact for sizes 1 and 2, an upper bound above. None: unavailable.
    mean_batch_size: float | None = None
    batches: int | None = None
    # 95% distribution-free interval for the true p99 from this window's sample (None: unbounded).
    p99_ci_low_ms: float | None = None
    p99_ci_high_ms: float | None = None

    @property
    def prediction_ratio(self) -> float | None:
        """Measured p99 over predicted p99 (None when nothing completed)."""
        if self.p99_ms is None or self.predicted_p99_ms <= 0:
            return None
        return self.p99_ms / self.predicted_p99_ms

    @property
    def within_band(self) -> bool | None:
        """Whether measured p99 lies within the prediction's stated band (PREDICTION_BAND either side)."""
        ratio = self.prediction_ratio
        return None if ratio is None else (1 - PREDICTION_BAND) <= ratio <= (1 + PREDICTION_BAND)

    def as_json(self) -> dict:
        data = asdict(self)
        data["pass"] = data.pop("passed")
        data["prediction_ratio"] = self.prediction_ratio
        data["within_band"] = self.within_band
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in data.items()}


@dataclass(frozen=True)
class LoadGeneratorSite:
    """Where the load generator ran, beside the cluster it measured (verify.json's `load_generator`).

    On one machine the generator competes with the replicas and the HTTP proxy for the same cores:
    a latency measured while it shares their cores includes its own contention.
    """
    process: str                        # "own process" (a child given the load alone) or "verifying process"
    pid: int
    cores: tuple[int, ...]              # the cores it could run on
    niceness: int
    pinned: bool                        # held to `cores` by CPU affinity for the load
    cluster_cores: tuple[int, ...] | None = None   # cores the embedded Ray's processes could run on; None: not known
    cpu_ms_per_request: float | None = None        # its own CPU per request sent (measured in its process); None: not known
    # vCPUs that processes other than the cluster and the load generator took on this machine during the
    # window (/proc; embedded Ray only): anything well above 0 competed with what was measured. None: not known.
    other_vcpus: float | None = None

    @property
    def shares_cores_with_cluster(self) -> bool | None:
        return None if self.cluster_cores is None else bool(set(self.cores) & set(self.cluster_cores))

    def describe(self) -> str:
        where = f"core{'' if len(self.cores) == 1 else 's'} {', '.join(map(str, self.cores))}"
        cluster = ("" if self.cluster_cores is None else
                   f"; the cluster on {', '.join(map(str, self.cluster_cores))}"
                   + (" (shared)" if self.shares_cores_with_cluster else " (not shared)"))
        cpu = "" if self.cpu_ms_per_request is None else f", {self.cpu_ms_per_request:.2f} ms CPU per request"
        if self.other_vcpus is not None:
            cluster += f"; other processes on this machine took {self.other_vcpus:.2f} vCPUs meanwhile"
        return f"{self.process} (pid {self.pid}), {'pinned to' if self.pinned else 'free on'} {where}, " \
               f"nice {self.niceness}{cpu}{cluster}"

    def as_json(self) -> dict:
        return {"process": self.process, "pid": self.pid, "cores": list(self.cores),
                "cluster_cores": None if self.cluster_cores is None else list(self.cluster_cores),
                "niceness": self.niceness, "pinned": self.pinned, "cpu_ms_per_request": self.cpu_ms_per_request,
                "other_vcpus": self.other_vcpus,
                "shares_cores_with_cluster": self.shares_cores_with_cluster}


@dataclass(frozen=True)
class VerificationReport:
    workloads: tuple[WorkloadVerification, ...]
    skipped: tuple[tuple[str, str], ...] = ()   # (workload, why it was not deployed here)
    source: str = ""                            # where the measurements were taken
    load_generator: LoadGeneratorSite | None = None   # where the load came from (None: not recorded)

    @property
    def all_passed(self) -> bool:
        return all(w.passed for w in self.workloads)


def summarise(name: str, url: str, qps_target: float, duration_s: float, latencies_ms: Sequence[float],
              errors: int, elapsed_s: float, p99_ms_target: float | None, predicted_p99_ms: float,
              error_samples: Sequence[str] = ()) -> WorkloadVerification:
    """Percentiles, achieved rate and the verdict for one workload's load window."""
    completed = len(latencies_ms)
    # The last requests of the window are expected to take up to the predicted p99 (a batch job's
    # formation wait can be seconds), so that much of the tail does not count against the rate.
    window_s = max(duration_s, elapsed_s - predicted_p99_ms / 1000.0)
    throughput = completed / window_s if window_s > 0 else 0.0
    p50 = float(np.percentile(latencies_ms, 50)) if completed else None
    p99 = float(np.percentile(latencies_ms, 99)) if completed else None
    low, high = quantile_confidence_interval(latencies_ms, 0.99)
    problems = []
    if errors:
        problems.append(f"{errors} failed requests ({'; '.join(error_samples[:2])})")
    if completed == 0:
        problems.append("no request completed")
    if p99 is not None and p99_ms_target is not None and p99 > p99_ms_target:
        problems.append(f"p99 {p99:.1f} ms > target {p99_ms_target:g} ms")
    if throughput < qps_target * (1 - THROUGHPUT_TOLERANCE):
        problems.append(f"throughput {throughput:.1f} rps < {100 * (1 - THROUGHPUT_TOLERANCE):.0f}% of {qps_target:g}")
    return WorkloadVerification(name=name, url=url, qps_target=qps_target, duration_s=duration_s,
                                requests=completed + errors, throughput_rps=throughput, p50_ms=p50, p99_ms=p99,
                                p99_ms_target=p99_ms_target, predicted_p99_ms=predicted_p99_ms, errors=errors,
                                passed=not problems, notes="; ".join(problems),
                                p99_ci_low_ms=low, p99_ci_high_ms=high)


def verification_to_dict(report: VerificationReport) -> dict:
    data = {"source": report.source,
            "workloads": [w.as_json() for w in report.workloads],
            "skipped": [{"name": n, "reason": r} for n, r in report.skipped]}
    if report.load_generator is not None:  # absent from files written before it was recorded
        data["load_generator"] = report.load_generator.as_json()
    return data


def write_verification(path: str | Path, report: VerificationReport) -> Path:
    return write_atomically(path, json.dumps(verification_to_dict(report), indent=2) + "\n")


def read_verification(path: str | Path, flag: str = "--verify") -> dict[str, Any]:
    """verify.json as a dict; InputError naming `flag` when it cannot be read.

    A dict, not a VerificationReport: hand-written or older files carry only the fields a
    report or the feedback needs (name, qps_target, p99_ms, ...), and their readers check those.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(flag, str(path), "file not found",
                         f"pass a verify.json written by `planner verify`, or leave {flag} out")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "bytes"
        raise InputError(flag, f"{path} ({where})", "not valid JSON",
                         "pass a verify.json written by `planner verify`") from None
    if not isinstance(data, dict):
        raise InputError(flag, str(path), "not a verify.json: expected a JSON object with a workloads list",
                         "pass a verify.json written by `planner verify`")
    return data


def verification_data(verification: VerificationReport | Mapping[str, Any] | str | Path,
                      flag: str = "--verify") -> Mapping[str, Any]:
    """verify.json's content from the report `api.verify` returned, that content as a dict, or the file.

    A report goes through the same dict as the file (floats rounded as written), so an
    in-memory verification and its verify.json give the same figures downstream.
    """
    if isinstance(verification, (str, Path)):
        return read_verification(verification, flag)
    if isinstance(verification, VerificationReport):
        return verification_to_dict(verification)
    return verification

"""The JAX-on-TPU backend and its profiler harness: the one module that imports JAX (lazily, inside functions).

Why a second framework: TPUs run XLA programs, and JAX is how the planner reaches
them. GPU profiling stays on torch (planner.profiling.profiler); this harness profiles on
JAX's CPU backend today and on a TPU host once ``jax[tpu]`` is installed there.

Method (per point), the same as planner.profiling.profiler so rows are comparable:
convert the trained torch weights of ``mlp_digits`` to JAX arrays at the
precision, compile the forward pass ahead of time (``jit(...).lower().compile()``,
reported as compile ms in ``source_detail``, never in the sample), then time single
batches with ``planner.profiling.profiler.time_callable``. JAX dispatches asynchronously, so
the sync step is ``block_until_ready`` on the outputs: without it the timer would
measure only the enqueue.

Honesty rules (STYLE.md 4): a row is ``measured`` only on the platform the hardware
type names. A TPU hardware type on a process whose JAX sees no TPU is refused
(``check_jax_sees``), so CPU timings can never be recorded under a TPU's name.

The backend (``JaxTpuBackend``) profiles TPUs but has no Serve replica yet: a plan that
puts a workload on a TPU is refused at deploy time (``Backend.check_can_serve``).
"""
from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from planner.backends.base import Backend, Capabilities, ReplicaSettings
from planner.core.catalog import HardwareType
from planner.core.errors import InputError, PlannerError, UnsupportedPrecision
from planner.core.profiles import ProfileRow, SkippedPoint
from planner.profiling.timing import TimingBudget, time_callable

SUPPORTED_MODELS = ("mlp_digits",)
JAX_PRECISIONS = ("fp32", "bf16")
TPU_CHIP_COUNTS = (1, 2, 4, 8)  # what Ray accepts for its "TPU" resource: a whole host's share of chips
# hardware kind -> the JAX platform that may time it ("gpu" is absent: GPU profiling uses torch).
_PLATFORM_FOR_KIND = {"cpu": "cpu", "tpu": "tpu"}
# torch nn.Sequential indices of the three Linear layers in planner.models.mlp_digits.
_LINEAR_KEYS = ("0", "2", "4")


def _jax() -> Any:
    """Import JAX, turning a missing install into a PlannerError that says how to fix it."""
    try:
        import jax
    except ImportError as exc:
        raise PlannerError(f"JAX is not installed in this Python ({exc}). "
                           "To fix: `pip install jax` (CPU) or `pip install 'jax[tpu]'` on a TPU host") from None
    return jax


def jax_versions() -> tuple[str, str]:
    """(framework_version, runtime_version), e.g. ('jax 0.10.2', 'jaxlib 0.10.2; cpu')."""
    jax = _jax()
    import jaxlib

    device = jax.devices()[0]
    platform_version = getattr(device.client, "platform_version", device.platform)
    return f"jax {jax.__version__}", f"jaxlib {jaxlib.__version__}; {platform_version}"


def jax_devices_summary() -> dict:
    """What JAX's default backend sees: platform, device kinds, count (plus versions)."""
    jax = _jax()
    devices = jax.devices()
    framework, runtime = jax_versions()
    return {"platform": jax.default_backend(), "device_kinds": sorted({d.device_kind for d in devices}),
            "count": len(devices), "framework_version": framework, "runtime_version": runtime}


def check_jax_sees(hardware: HardwareType) -> str:
    """Return the JAX platform that may time ``hardware``, or refuse with a fix.

    TPU: JAX must have a TPU backend; CPU: JAX's CPU backend (present in every jaxlib);
    GPU: refused, because GPU rows come from the torch profiler.
    """
    jax = _jax()
    if hardware.kind == "gpu":
        raise PlannerError(f"hardware '{hardware.name}' is a GPU; the JAX harness profiles CPUs and TPUs only. "
                           "To fix: profile GPUs with the torch profiler (planner.profiling.profiler.profile_point)")
    platform = _PLATFORM_FOR_KIND.get(hardware.kind)
    if platform is None:
        raise PlannerError(f"hardware '{hardware.name}' has kind {hardware.kind!r}, which the JAX harness "
                           "does not know. To fix: use a catalog entry of kind cpu or tpu")
    try:
        jax.devices(platform)
    except RuntimeError as exc:
        seen = sorted({d.platform for d in jax.devices()})
        if platform == "tpu":
            raise PlannerError(
                f"hardware '{hardware.name}' is a TPU: the node claims TPUs (Ray resource 'TPU' / accelerator "
                f"type {hardware.ray_accelerator_type!r}) but JAX sees only {seen} devices "
                f"(TPU_VISIBLE_CHIPS={os.environ.get('TPU_VISIBLE_CHIPS')!r}, "
                f"JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS')!r}; JAX said: {exc}); "
                "refusing to record CPU timings as TPU timings. "
                "To fix: install jax[tpu] on the TPU host or check TPU_VISIBLE_CHIPS") from None
        raise PlannerError(f"hardware '{hardware.name}' is a CPU type but JAX has no CPU backend "
                           f"(it sees {seen}; {exc}). To fix: unset JAX_PLATFORMS or include 'cpu' in it") from None
    return platform


# ---------------------------------------------------------------- the digits MLP in JAX

def _check_model_and_precision(model: str, precision: str) -> None:
    if model not in SUPPORTED_MODELS:
        raise PlannerError(f"model={model!r} has no JAX version yet. To fix: use one of "
                                   f"{', '.join(SUPPORTED_MODELS)}, or profile it with the torch profiler")
    if precision not in JAX_PRECISIONS:
        raise UnsupportedPrecision(f"precision={precision!r} is not supported by the JAX harness. "
                                   f"To fix: use one of {', '.join(JAX_PRECISIONS)}")


def _dtype(precision: str) -> Any:
    import jax.numpy as jnp

    return {"fp32": jnp.float32, "bf16": jnp.bfloat16}[precision]


def mlp_digits_params(precision: str = "fp32", platform: str = "cpu") -> list[tuple[Any, Any]]:
    """The trained torch weights of ``mlp_digits`` as [(W^T, b)] JAX arrays on ``platform``.

    Same weights as the torch model (planner.models.mlp_digits.load_or_train), cast to
    the precision's dtype; W is transposed once so the forward pass is ``x @ W + b``.
    """
    _check_model_and_precision("mlp_digits", precision)
    jax = _jax()
    from planner.models import mlp_digits

    state, _ = mlp_digits.load_or_train()
    device = jax.devices(platform)[0]
    dtype = _dtype(precision)
    params = []
    for key in _LINEAR_KEYS:
        weight = state[f"{key}.weight"].detach().cpu().numpy().T.copy()
        bias = state[f"{key}.bias"].detach().cpu().numpy().copy()
        params.append((jax.device_put(weight.astype(np.float32), device).astype(dtype),
                       jax.device_put(bias.astype(np.float32), device).astype(dtype)))
    return params


def _mlp_forward(params: list[tuple[Any, Any]], x: Any) -> Any:
    """64-256-256-10 with ReLU, computed in the params' dtype; logits returned as float32."""
    import jax.numpy as jnp

    h = x.astype(params[0][0].dtype)
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = jnp.maximum(h, 0)
    return h.astype(jnp.float32)


def mlp_digits_outputs(inputs: np.ndarray, precision: str = "fp32", platform: str = "cpu") -> np.ndarray:
    """Float32 logits of the JAX digits MLP for ``inputs`` (rows of 64 features)."""
    jax = _jax()
    params = mlp_digits_params(precision, platform)
    x = jax.device_put(np.asarray(inputs, dtype=np.float32), jax.devices(platform)[0])
    return np.asarray(jax.jit(_mlp_forward)(params, x))


def jax_quality_loss(precision: str, platform: str = "cpu") -> Any:
    """Accuracy drop vs fp32 on the held-out digits split, as planner.models.quality does.

    Both precisions run on the same JAX platform, so the figure isolates precision.
    Returns a planner.models.quality.QualityResult (metric "accuracy_drop").
    """
    _check_model_and_precision("mlp_digits", precision)
    from planner.models import mlp_digits
    from planner.models.quality import QualityResult

    inputs, labels = mlp_digits.calibration()
    x, y = inputs.numpy(), labels.numpy()
    ref_acc = float((mlp_digits_outputs(x, "fp32", platform).argmax(axis=1) == y).mean())
    if precision == "fp32":
        return QualityResult(precision, 0.0, "accuracy_drop", ref_acc, ref_acc, int(x.shape[0]))
    acc = float((mlp_digits_outputs(x, precision, platform).argmax(axis=1) == y).mean())
    return QualityResult(precision, max(0.0, ref_acc - acc), "accuracy_drop", ref_acc, acc, int(x.shape[0]))


# ---------------------------------------------------------------- profiling one point

def _memory_gib(params: list[tuple[Any, Any]], batch_size: int, device: Any) -> tuple[float, str]:
    """Peak device memory when the backend reports it (TPU); else weights + input + activations."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("peak_bytes_in_use"):
        return stats["peak_bytes_in_use"] / 2**30, "memory measured (device.memory_stats peak_bytes_in_use)"
    itemsize = params[0][0].dtype.itemsize
    weights = sum(w.size * itemsize + b.size * itemsize for w, b in params)
    activations = batch_size * (params[0][0].shape[0] + sum(w.shape[1] for w, _ in params)) * itemsize
    logits_f32 = batch_size * params[-1][0].shape[1] * 4
    return (weights + activations + logits_f32) / 2**30, "memory estimated from array sizes"


def _provenance(device: Any, threads: int) -> Any:
    """Device name, fingerprint and versions; CPU fingerprints match torch rows of the same CPU."""
    import platform as host

    from planner.profiling.provenance import Provenance, code_version, local_provenance

    framework, runtime = jax_versions()
    if device.platform == "cpu":
        cpu = local_provenance("cpu", threads)
        return Provenance(cpu.device_name, cpu.device_fingerprint,
                          f"{runtime}; {host.system()} {host.release()}", framework, code_version())
    fingerprint = hashlib.sha256(f"{device.platform}|{device.device_kind}|{runtime}".encode()).hexdigest()[:12]
    return Provenance(device.device_kind, fingerprint, runtime, framework, code_version())


def _work_per_item(precision: str, batch_size: int) -> Any:
    """FLOPs and bytes per item, counted on the torch twin by planner.profiling.efficiency (one convention).

    XLA fuses bias + ReLU, so its real activation traffic is lower than the count.
    """
    from planner.models import get_model
    from planner.models.precision import prepare_for_precision
    from planner.profiling.efficiency import count_work

    spec = get_model("mlp_digits")
    module, cast = prepare_for_precision(spec, precision, "cpu")
    return count_work(module, cast(spec.example_input(batch_size)))


def profile_jax_point(model: str, precision: str, batch_size: int, hardware: HardwareType,
                      budget: TimingBudget = TimingBudget(), *, threads: int = 1,
                      quality_loss: float | None = None, energy_window_s: float = 0.5) -> ProfileRow:
    """Measure one (model, precision, batch size) point with JAX on the platform ``hardware`` names.

    ``threads`` is the CPU replica size the row records (the CPUs a Ray task reserved);
    XLA's CPU thread pool is not pinned to it, which ``source_detail`` says.
    """
    _check_model_and_precision(model, precision)
    platform = check_jax_sees(hardware)  # refuses TPU/GPU hardware that JAX cannot see
    jax = _jax()
    from planner.models import mlp_digits
    from planner.profiling.efficiency import efficiency
    from planner.profiling.profiler import measure_energy

    device = jax.devices(platform)[0]
    params = mlp_digits_params(precision, platform)
    batch = jax.device_put(mlp_digits.example_input(batch_size).numpy(), device).astype(_dtype(precision))

    t0 = time.perf_counter()
    compiled = jax.jit(_mlp_forward).lower(params, batch).compile()
    jax.block_until_ready(compiled(params, batch))  # first call: transfers and lazy init, untimed
    compile_ms = (time.perf_counter() - t0) * 1000.0

    pending: list[Any] = []

    def run() -> None:
        pending.append(compiled(params, batch))

    def sync() -> None:  # async dispatch: wait for every output enqueued since the last sync
        jax.block_until_ready(pending)
        pending.clear()

    sample = time_callable(run, budget, sync)
    memory_gib, memory_note = _memory_gib(params, batch_size, device)
    # The energy window uses the same meters as torch rows: RAPL or the catalog model on CPU,
    # the catalog model elsewhere (no TPU power counter is read).
    joules_per_run, energy_label, _ = measure_energy(run, sync, platform, hardware, threads, energy_window_s)
    if quality_loss is None:
        quality_loss = jax_quality_loss(precision, platform).quality_loss

    units = hardware.units_per_replica(threads)
    throughput = batch_size * 1000.0 / sample.mean_ms
    work = _work_per_item(precision, batch_size)
    eff = efficiency(work, throughput, hardware, precision, units)
    prov = _provenance(device, threads)
    stability = "stable" if sample.stable else "NOT stable within budget"
    thread_note = "; XLA CPU thread pool not pinned to the thread count" if platform == "cpu" else ""
    return ProfileRow(
        model=model, hardware=hardware.name, precision=precision, batch_size=batch_size,
        latency_p50_ms=sample.percentile(50), latency_p99_ms=sample.percentile(99), throughput_rps=throughput,
        memory_gib=memory_gib, energy_j_per_item=joules_per_run / batch_size, quality_loss=quality_loss,
        source="measured", latency_p90_ms=sample.percentile(90), units_per_replica=units,
        device_name=prov.device_name,
        source_detail=(f"{prov.device_name}, {prov.framework_version} on JAX platform {platform}; "
                       f"compile {compile_ms:.1f} ms (excluded from timing); {memory_note}; "
                       f"{stability} over {len(sample.window_p50_ms)} windows{thread_note}"),
        energy_source=energy_label, samples=len(sample.latencies_ms), latency_cv=sample.cv,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        flops_per_item=work.flops_per_item, bytes_per_item=work.bytes_per_item,
        achieved_tflops=eff.achieved_tflops, achieved_gbps=eff.achieved_gbps, peak_fraction=eff.peak_fraction,
        device_fingerprint=prov.device_fingerprint, runtime_version=prov.runtime_version,
        framework_version=prov.framework_version, code_version=prov.code_version, mode="inference",
        execution="jax_jit",
    )


def profile_jax_grid(model: str, precision: str, batch_sizes: Sequence[int], hardware: HardwareType,
                     budget: TimingBudget = TimingBudget(), *, threads: int = 1,
                     max_batch_latency_ms: float | None = None) -> tuple[list[ProfileRow], list[SkippedPoint]]:
    """Every batch size in increasing order, quality measured once, as profiler.profile_grid does for torch.

    Growth stops (the rest ``pruned``) once a batch's p99 exceeds ``max_batch_latency_ms``.
    """
    sizes = sorted(set(batch_sizes))
    platform = check_jax_sees(hardware)  # refuse before spending time on quality
    quality = jax_quality_loss(precision, platform).quality_loss
    rows: list[ProfileRow] = []
    for i, batch_size in enumerate(sizes):
        row = profile_jax_point(model, precision, batch_size, hardware, budget, threads=threads, quality_loss=quality)
        rows.append(row)
        if max_batch_latency_ms is not None and row.latency_p99_ms > max_batch_latency_ms:
            reason = (f"batch {batch_size} p99 {row.latency_p99_ms:.1f} ms already exceeds the slowest "
                      f"target {max_batch_latency_ms:g} ms")
            return rows, [SkippedPoint(model, hardware.name, precision, b, "pruned", reason) for b in sizes[i + 1:]]
    return rows, []


# ---------------------------------------------------------------- the backend

def tpu_task_options(hardware: HardwareType, chips: int) -> dict:
    """Ray task options that land on a node with ``chips`` TPU chips of ``hardware``'s generation."""
    if hardware.kind != "tpu":
        raise InputError("hardware", hardware.name, f"is a {hardware.kind}, not a TPU",
                         "pass a catalog entry of kind tpu (e.g. tpu-v5e)")
    if not hardware.ray_accelerator_type:
        raise InputError(f"{hardware.name}.ray_accelerator_type", hardware.ray_accelerator_type,
                         "a TPU entry needs a Ray accelerator type to be placed",
                         "set ray_accelerator_type in the catalog, e.g. TPU-V5LITEPOD")
    if isinstance(chips, bool) or chips not in TPU_CHIP_COUNTS:
        raise InputError("chips", chips, "Ray TPU requests must be a whole host's share of chips",
                         f"use one of {', '.join(map(str, TPU_CHIP_COUNTS))}")
    return {"num_cpus": 1, "resources": {"TPU": chips}, "accelerator_type": hardware.ray_accelerator_type}


class JaxTpuBackend(Backend):
    """Profiles with the JAX harness above; has no Serve replica yet (ModelServer is torch-only)."""

    name = "jax-tpu"
    description = "JAX on TPUs"
    kind = "tpu"
    framework = "jax"
    profiling_device = "tpu"
    capabilities = Capabilities(precisions=JAX_PRECISIONS, profiles=True, serves=False)

    def check_device(self, hardware: HardwareType, device: str | None = None) -> str:
        """The JAX platform that may time ``hardware`` (``device`` is unused: JAX picks by platform)."""
        return check_jax_sees(hardware)

    def measure_point(self, model: str, precision: str, batch_size: int, hardware: HardwareType, *,
                      device: str | None = None, threads: int = 1,
                      budget: TimingBudget = TimingBudget()) -> ProfileRow:
        return profile_jax_point(model, precision, batch_size, hardware, budget, threads=threads)

    def profile_grid(self, model: str, precision: str, batch_sizes: Sequence[int], hardware: HardwareType, *,
                     device: str | None = None, threads: int = 1, budget: TimingBudget = TimingBudget(),
                     max_batch_latency_ms: float | None = None) -> tuple[list[ProfileRow], list[SkippedPoint]]:
        return profile_jax_grid(model, precision, batch_sizes, hardware, budget, threads=threads,
                                max_batch_latency_ms=max_batch_latency_ms)

    def profiling_task_options(self, hardware: HardwareType, threads: int,
                               cpu_label_selector: dict[str, str] | None = None) -> dict[str, Any]:
        return tpu_task_options(hardware, 1)  # one chip of the planned generation

    def replica_actor_options(self, hardware: HardwareType, units_per_replica: float,
                              cpu_label_selector: dict[str, str] | None = None) -> dict[str, Any]:
        # Where a replica would be placed (whole chips of the generation); deploy refuses it before that.
        from planner.core.inventory import ACCELERATOR_REPLICA_CPUS

        return {"num_cpus": ACCELERATOR_REPLICA_CPUS, "resources": {"TPU": units_per_replica},
                "accelerator_type": hardware.ray_accelerator_type}

    def replica_settings(self, hardware: HardwareType, units_per_replica: float) -> ReplicaSettings:
        # What a generated Serve config records; no replica runs it while capabilities.serves is False.
        return ReplicaSettings(device="tpu", threads=1)

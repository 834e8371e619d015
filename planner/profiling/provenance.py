"""Where a measurement was taken: device fingerprint, runtime and framework versions, code version.

Two rows are comparable only when these match; the profile store keys its
cache on the fingerprint and framework version, and every row carries them.
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Provenance:
    device_name: str
    device_fingerprint: str
    runtime_version: str
    framework_version: str
    code_version: str


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of this checkout, or PLANNER_CODE_VERSION (for copies without .git)."""
    if os.environ.get("PLANNER_CODE_VERSION"):
        return os.environ["PLANNER_CODE_VERSION"]
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from planner import __version__
    return f"{__version__}+unknown"


def _cpu_info() -> tuple[str, str]:
    """CPU model name and its feature flags (the flags decide which kernels torch can use)."""
    name, flags = "", ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and not name:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name or platform.processor() or "unknown CPU", flags


def cpu_name() -> str:
    return _cpu_info()[0]


def local_provenance(device: str, threads: int = 1) -> Provenance:
    """Provenance of this process's device: torch's view of the GPU, or the CPU's model and flags."""
    import torch

    framework = f"torch {torch.__version__}"
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        uuid = str(getattr(props, "uuid", "")) or f"{props.name}-{props.total_memory}"
        return Provenance(device_name=props.name, device_fingerprint=_short_hash(uuid),
                          runtime_version=f"CUDA {torch.version.cuda}, driver {_nvidia_driver()}",
                          framework_version=framework, code_version=code_version())
    name, flags = _cpu_info()
    return Provenance(device_name=f"{name} ({threads} thread{'s' if threads != 1 else ''})",
                      device_fingerprint=_short_hash(f"{name}|{flags}|{os.cpu_count()}"),
                      runtime_version=f"{platform.system()} {platform.release()}",
                      framework_version=framework, code_version=code_version())


def _nvidia_driver() -> str:
    try:
        with open("/proc/driver/nvidia/version") as fh:
            first = fh.readline()
        for token in first.split():
            if token.count(".") >= 1 and token.replace(".", "").isdigit():
                return token
    except OSError:
        pass
    return "unknown"

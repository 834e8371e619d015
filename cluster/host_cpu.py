"""CPU time of this machine's processes, read from /proc: what the serving path and the verification
windows cost, and what else on the machine competed with them.

Linux only (/proc); elsewhere every reader returns None or 0 and callers say "not measured".
"""
from __future__ import annotations

import os
import time
from typing import Callable

CLK_TCK = os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> set[int]:
    """Every process below `root` (an embedded Ray's GCS, raylet and workers are this process's)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def process_cpu_s(match: Callable[[str], bool]) -> float:
    """CPU seconds (user + system) of the cluster's processes on this machine whose command line matches.

    On an embedded Ray only this process's descendants count, so other Ray clusters sharing the
    machine (another user's, a test session's) are not charged to this one.
    """
    from cluster.runtime import embedded_cores

    own = descendants(os.getpid()) if embedded_cores() is not None else None
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid() or (own is not None and int(entry) not in own):
            continue
        try:
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
            if not match(cmdline):
                continue
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime, stime (fields 14, 15)
        except (OSError, IndexError, ValueError):
            continue
    return total


def is_proxy(cmdline: str) -> bool:
    return "ProxyActor" in cmdline


def is_ray(cmdline: str) -> bool:
    return any(key in cmdline for key in ("ray::", "raylet", "gcs_server", "/ray/", "ray/_private"))


def machine_busy_s() -> float | None:
    """CPU seconds every core of this machine has spent busy since boot (/proc/stat: all but idle and iowait)."""
    try:
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    steal = fields[7] if len(fields) > 7 else 0   # another VM's, not this machine's work
    return (sum(fields[:8]) - idle - steal) / CLK_TCK


def own_tree_cpu_s() -> float:
    """CPU seconds of this process, its children it has waited for, and its live descendants
    (on an embedded Ray: the GCS, raylet, workers, replicas and proxy)."""
    total = 0.0
    for pid in {os.getpid(), *descendants(os.getpid())}:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
            if pid == os.getpid():
                ticks += int(fields[13]) + int(fields[14])   # cutime, cstime: children waited for
            total += ticks / CLK_TCK
        except (OSError, IndexError, ValueError):
            continue
    return total


class OtherCpu:
    """CPU taken by processes outside this process's tree over a window, in vCPUs (None: not measurable).

        with OtherCpu() as other:
            ...drive load...
        other.vcpus   # e.g. 0.4: something else on the machine ran beside the measurement
    """
    vcpus: float | None = None

    def __enter__(self) -> "OtherCpu":
        self._busy, self._own, self._t = machine_busy_s(), own_tree_cpu_s(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        busy = machine_busy_s()
        if busy is None or self._busy is None:
            return
        elapsed = max(1e-6, time.perf_counter() - self._t)
        self.vcpus = max(0.0, (busy - self._busy) - (own_tree_cpu_s() - self._own)) / elapsed

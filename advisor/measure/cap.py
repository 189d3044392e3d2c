"""A hard memory cap for the measuring child, so a run can never take the machine down.

Where this process may create a memory cgroup (root, or a delegated cgroup v2 subtree), the
child runs in its own group with ``memory.limit_in_bytes`` (v1) or ``memory.max`` (v2) set to
the cap: the kernel reclaims and then kills only that group when the cap is reached, and the
group's ``oom_kill`` / ``failcnt`` counters say afterwards that it happened (kernel docs,
Documentation/admin-guide/cgroup-v1/memory.rst and cgroup-v2.rst). Elsewhere the child limits its
own address space with ``RLIMIT_AS`` (setrlimit(2)): allocations beyond it fail inside the child,
which reports an out-of-memory error; address space counts reservations too, so that cap is the
cap plus the child's baseline address space (measured on a bare child of the same interpreter).
"""

from __future__ import annotations

import contextlib
import os
import resource
import uuid
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_V1 = Path("/sys/fs/cgroup/memory")
CGROUP_V2 = Path("/sys/fs/cgroup")


@dataclass
class MemoryCap:
    """The cap one measurement runs under.

    Attributes:
        limit_bytes: the most the child may hold (resident, for a cgroup; above its baseline
            address space for ``RLIMIT_AS``).
        kind: ``"cgroup-v1"``, ``"cgroup-v2"`` or ``"rlimit"``.
        group: the cgroup directory this cap made (removed by :meth:`close`), None for rlimit.
    """

    limit_bytes: int
    kind: str
    group: Path | None = None
    address_space_bytes: int = 0
    _closed: bool = field(default=False, repr=False)

    def preexec(self) -> None:
        """Run in the child before it executes (``subprocess.Popen(preexec_fn=...)``): it joins
        the group (or limits itself) before its first allocation."""
        os.setpgrp()  # its own process group: Cancel kills it and whatever it started
        if self.group is not None:
            fd = os.open(self.group / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
        elif self.kind == "rlimit":
            limit = self.address_space_bytes + self.limit_bytes
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def was_hit(self) -> bool:
        """Whether the kernel had to kill or refuse memory in the group (cgroups only)."""
        if self.group is None:
            return False
        try:
            if self.kind == "cgroup-v1":
                oom = (self.group / "memory.oom_control").read_text(encoding="ascii")
                return "oom_kill 1" in oom or int((self.group / "memory.failcnt").read_text(encoding="ascii")) > 0
            events = (self.group / "memory.events").read_text(encoding="ascii")
            return any(line.split()[0] in ("oom_kill", "oom") and int(line.split()[1]) > 0
                       for line in events.splitlines() if line.strip())
        except (OSError, ValueError, IndexError):
            return False

    def max_usage(self) -> int:
        """The most the group was charged (v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``); 0
        for rlimit or a kernel that does not say."""
        if self.group is None:
            return 0
        name = "memory.max_usage_in_bytes" if self.kind == "cgroup-v1" else "memory.peak"
        try:
            return int((self.group / name).read_text(encoding="ascii").split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def close(self) -> None:
        """Remove the group this cap made (only that one); safe to call twice."""
        if self._closed or self.group is None:
            self._closed = True
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.group.rmdir()


def make_cap(limit_bytes: int, *, baseline_address_space: int = 0) -> MemoryCap:
    """A cgroup cap when this process can make one, else an ``RLIMIT_AS`` cap."""
    name = f"memory-advisor-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    for kind, root, limit_file in (("cgroup-v1", CGROUP_V1, "memory.limit_in_bytes"),
                                   ("cgroup-v2", CGROUP_V2, "memory.max")):
        if kind == "cgroup-v2" and not (root / "cgroup.controllers").exists():
            continue
        if not root.is_dir() or not os.access(root, os.W_OK):
            continue
        group = root / name
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            (group / limit_file).write_text(str(limit_bytes), encoding="ascii")
            if kind == "cgroup-v1":
                with contextlib.suppress(OSError):  # swap counts too where the kernel accounts it
                    (group / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes), encoding="ascii")
            else:
                with contextlib.suppress(OSError):
                    (group / "memory.swap.max").write_text("0", encoding="ascii")
        except OSError:
            with contextlib.suppress(OSError):
                group.rmdir()
            continue
        return MemoryCap(limit_bytes, kind, group)
    return MemoryCap(limit_bytes, "rlimit", None, address_space_bytes=baseline_address_space)


def can_make_cgroup() -> bool:
    """Whether this process can make a memory cgroup for a child (tries, then removes it)."""
    cap = make_cap(1 << 30)
    try:
        return cap.group is not None
    finally:
        cap.close()

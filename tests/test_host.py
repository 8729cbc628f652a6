"""The host allocator policy (core/host.py): freed large blocks are reused, not faulted in anew.

Each case runs in a fresh interpreter: mallopt settings are process-wide and permanent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

_PROBE = """
import json, resource, sys
import torch
from diffsep_cli.core.host import reuse_freed_memory
on = reuse_freed_memory() if sys.argv[1] == "reuse" else False
x, w1, w2 = torch.randn(1 << 16, 72), torch.randn(288, 72), torch.randn(72, 144)
faults = []
for _ in range(6):  # a SwiGLU layer's activations: 18-72 MiB blocks, as in the paper's network
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a, b = torch.nn.functional.linear(x, w1).chunk(2, -1)
    y = torch.nn.functional.linear(a * torch.nn.functional.silu(b), w2)
    del a, b, y
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"on": on, "faults": faults}))
"""
PAGES = (1 << 16) * 288 * 4 // 4096  # pages of the largest block


def _probe(policy: str, **env: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, policy],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="mallopt is glibc's",
)


@glibc
def test_freed_blocks_are_reused_instead_of_faulted_in_again() -> None:
    reuse = _probe("reuse")
    assert reuse["on"] is True
    assert reuse["faults"][0] >= PAGES  # the first call's blocks are new memory
    assert max(reuse["faults"][-2:]) < PAGES // 50  # later calls reuse them (measured: 0)
    # negative control: glibc's default maps and unmaps every such block, faulting it in anew
    system = _probe("system")
    assert min(system["faults"]) >= PAGES  # measured: 41475 pages every call


@glibc
def test_a_users_malloc_settings_are_left_alone() -> None:
    probe = _probe("reuse", MALLOC_MMAP_THRESHOLD_="131072")
    assert probe["on"] is False and min(probe["faults"]) >= PAGES

"""Speed and memory of the denoiser: forward, and the guided step (forward + backward to the
input with frozen weights), at the paper config and a small one, on CPU (and CUDA if present).

Each case runs in a fresh process so its peak memory is its own:
    python benchmarks/bench_core.py                       # the default table
    python benchmarks/bench_core.py --case paper:4:guided --repeat 2
    python benchmarks/bench_core.py --case paper:4:forward:bf16   # precision: fp32 (default),
                                                                   # bf16, auto (autocast)
    OMP_NUM_THREADS=1 python benchmarks/bench_core.py --case lite:4:guided --repeat 3
    python benchmarks/bench_core.py --malloc system    # glibc's default policy, not the CLI's
Reference (official code, torch 2.13 CPU, 2 threads, glibc's default malloc): on one idle
2-core machine (issue 17) the paper config at 4 s took 6.1 s forward and 18.4 s forward +
backward at a 14.1 GB peak; on an earlier, slower one (method.md) 41-56 s and 64-129 s, 14.3 GB;
hidden 8 at 4 s, forward+backward 12.8 s. On an AMD EPYC 2-core machine (session 22, the
official network run from a transcription that reproduces the official fixture exactly): forward
9.84 s (6.90 s with this repo's malloc policy), guided 24.4-27.3 s at 13.8 GB (13.2 s, 14.1 GB);
ours there 4.02 s, 9.69 s at 8.75 GB, guided-ckpt 12.9 s at 3.3 GB; session 23 (the SwiGLU
keeping two tensors, v not holding q and k): guided 10.3-11.1 s at 7.7 GB (8.8 before, same
runs alternating), guided-ckpt 12.3-13.0 s at 3.3 GB; official guided 24.3 s at 13.7 GB again.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace

import torch

from diffsep_cli.config import LITE_NET, SMALL_NET, NetConfig, PriorConfig
from diffsep_cli.core.devices import autocast, native_bf16
from diffsep_cli.core.host import reuse_freed_memory
from diffsep_cli.core.prior import Prior

CONFIGS = {
    "paper": NetConfig(hidden=72, emb=128, heads=4),
    "h8": NetConfig(hidden=8, emb=16, heads=4, num_classes=50),
    "small": SMALL_NET,
    "lite": LITE_NET,
    # STFT resolution of the bundled layout: 8 ms / 16 ms (bundled) / 32 ms hops at 16 kHz
    "lite-fft254": replace(LITE_NET, n_fft=254, hop=127),
    "lite-fft1022": replace(LITE_NET, n_fft=1022, hop=511),
}
DEFAULT_CASES = [
    "paper:1:forward",
    "paper:1:guided",
    "paper:1:guided-ckpt",
    "paper:4:forward",
    "paper:4:guided",
    "paper:4:guided-ckpt",
    "h8:4:guided",
]


def _count_cpu_attention_flops() -> None:
    """Teach torch's FLOP counter the CPU flash attention (forward and backward): it counts
    the CUDA kernels only, so the attention FLOPs of a CPU run would go missing."""
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    forward = aten._scaled_dot_product_flash_attention_for_cpu
    backward = aten._scaled_dot_product_flash_attention_for_cpu_backward
    if forward.default in fc.flop_registry:
        return

    @fc.register_flop_formula(forward)
    def _fwd(q: object, k: object, v: object, *args: object, **kwargs: object) -> int:
        return int(fc.sdpa_flop_count(q, k, v))

    @fc.register_flop_formula(backward)
    def _bwd(go: object, q: object, k: object, v: object, *args: object, **kwargs: object) -> int:
        return int(fc.sdpa_backward_flop_count(go, q, k, v))


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def matmul_peak(device: str, n: int = 2048, repeat: int = 6, bf16: bool = False) -> float:
    """Achieved GFLOP/s of an n x n matmul here (fp32, or bf16): the practical ceiling of the
    cases."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(repeat + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _step(prior: Prior, x: torch.Tensor, mode: str) -> None:
    if mode == "forward":
        with torch.no_grad():
            prior.denoise(x, 150)
    else:
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(prior.denoise(xg, 150).square().sum(), xg)


def run_case(case: str, repeat: int, device: str) -> dict[str, object]:
    """One case ``config:seconds:mode[:precision]`` in this process; returns timings, FLOPs
    (torch.utils.flop_counter, the CPU attention included), achieved GFLOP/s and peak memory."""
    from torch.utils.flop_counter import FlopCounterMode

    name, seconds, mode, precision = [*case.split(":"), "fp32"][:4]
    bf16 = precision == "bf16" or (precision == "auto" and native_bf16(torch.device(device)))

    def step() -> None:
        with autocast(torch.device(device), precision):
            _step(prior, x, mode)

    prior = Prior(PriorConfig(net=CONFIGS[name])).to(device).eval().requires_grad_(False)
    prior.net.grad_checkpointing = mode.endswith("-ckpt")
    x = 0.05 * torch.randn(1, int(float(seconds) * 16000), device=device)
    times = []
    for _ in range(repeat + 1):  # first run warms up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak_rss_gb = round(_peak_rss_gb(), 2)  # before counting: the counter holds more memory
    _count_cpu_attention_flops()
    with FlopCounterMode(display=False) as counter:
        step()
    row: dict[str, object] = {
        "case": case,
        "device": device,
        "threads": torch.get_num_threads(),
        "best_s": min(times[1:]),
        "median_s": sorted(times[1:])[len(times[1:]) // 2],
        "peak_rss_gb": peak_rss_gb,
        "gflop": counter.get_total_flops() / 1e9,
    }
    row["gflops"] = row["gflop"] / min(times[1:])
    row["matmul_gflops"] = matmul_peak(device, bf16=bf16)
    if device.startswith("cuda"):
        row["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", help="config:seconds:mode[:precision] (repeatable)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--malloc",
        choices=("reuse", "system"),
        default="reuse",
        help="reuse: freed blocks kept for reuse, as every diffsep command runs (default); "
        "system: glibc's default (large blocks mmap'd and returned)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    cases = args.case or DEFAULT_CASES
    if args.child:
        if args.malloc == "reuse":
            reuse_freed_memory()
        print(json.dumps(run_case(cases[0], args.repeat, args.device)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, malloc {args.malloc}")
    print(
        f"{'case':24} {'best s':>8} {'median s':>9} {'peak RSS GB':>12} {'GFLOP':>8} "
        f"{'GFLOP/s':>8} {'of matmul':>9}"
    )
    for case in cases:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--case",
            case,
            "--repeat",
            str(args.repeat),
            "--device",
            args.device,
            "--malloc",
            args.malloc,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"{case:24} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        share = row["gflops"] / row["matmul_gflops"]
        print(
            f"{case:24} {row['best_s']:8.2f} {row['median_s']:9.2f} {row['peak_rss_gb']:12.2f} "
            f"{row['gflop']:8.1f} {row['gflops']:8.1f} {share:9.0%}"
        )


if __name__ == "__main__":
    main()

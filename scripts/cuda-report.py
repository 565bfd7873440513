#!/usr/bin/env python3
"""Turns bench_cuda's JSON (Google Benchmark, --benchmark_repetitions) into the CUDA section of
docs/benchmarks.md: each op's bandwidth (the median of its repetitions) as a share of the
device-to-device copy measured in the same run (issue 3's goal: at least 85%).

Usage: python3 scripts/cuda-report.py bench_cuda.json   (scripts/device-check.sh runs it)
"""
import json
import sys
from statistics import median

GOAL = 0.85


def bandwidths(result):
    """Median bytes per second by benchmark name, and the errors reported instead of figures."""
    runs, errors = {}, {}
    for b in result.get("benchmarks", []):
        name = b["run_name"].split("/")[0]
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "error")
        elif b.get("run_type", "iteration") == "iteration":
            runs.setdefault(name, []).append(b["bytes_per_second"])
    return {name: median(v) for name, v in runs.items()}, errors


def report(result):
    rates, errors = bandwidths(result)
    if "BM_CudaCopy" not in rates:
        reasons = sorted(set(errors.values())) or ["no benchmark ran"]
        return "CUDA benchmarks: no figures (" + "; ".join(reasons) + ")\n"
    copy = rates["BM_CudaCopy"]
    lines = ["| op | GB/s | share of the copy | goal >= 85% |", "|---|---|---|---|"]
    for name, rate in rates.items():
        share = rate / copy
        verdict = "baseline" if name == "BM_CudaCopy" else ("met" if share >= GOAL else "missed")
        lines.append(f"| {name[3:]} | {rate / 1e9:.0f} | {share:.0%} | {verdict} |")
    for name, message in errors.items():
        lines.append(f"| {name[3:]} | error: {message} | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        sys.stdout.write(report(json.load(f)))

#!/usr/bin/env python3
"""Runs the benchmark binaries and writes docs/benchmarks.md: every figure as a ratio to the
baseline measured in the same run (the streaming copy of the same tensor).

Usage: .venv/bin/python scripts/bench-report.py [build-dir]   (after ./scripts/run-tests.sh)
"""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from statistics import median

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build")
binary = os.path.join(build, "tests", "benchmarks", "bench_ops")
calib_binary = os.path.join(build, "tests", "benchmarks", "bench_calib")
model_binary = os.path.join(build, "tests", "benchmarks", "bench_model")


# Every benchmark runs REPS times, all of them in random interleaved order, and a figure is the
# median of its repetitions: interleaving lets drift of this shared VM hit a benchmark and its
# baseline alike, and the median ignores the odd disturbed repetition either way. (The fastest
# repetition was tried: it pairs a baseline's luckiest moment with a benchmark's, which swung
# ratios more than the median does.)
REPS = ["--benchmark_repetitions=5", "--benchmark_enable_random_interleaving=true"]


def run(env_extra, program=binary, args=()):
    env = dict(os.environ, **env_extra)
    out = subprocess.run([program, "--benchmark_format=json", *REPS, *args], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def medians(result, field):
    """Median of `field` over a benchmark's repetitions, by (name, threads), for every benchmark
    that reports it."""
    runs = {}
    for b in result["benchmarks"]:
        # A benchmark that skipped itself (no counting version on an AVX-512 CPU) has no time.
        if (b.get("run_type", "iteration") != "iteration" or field not in b
                or b.get("error_occurred")):
            continue
        name = b["run_name"].replace("/min_time:0.500", "").replace("/real_time", "")
        parts = name.split("/")
        runs.setdefault(("/".join(parts[:-1]), parts[-1]), []).append(b[field])
    return {key: median(v) for key, v in runs.items()}


def rows(result):
    """Time (ms) by (name, threads): the median of a benchmark's repetitions."""
    return medians(result, "real_time")


def times_and_pairs(result):
    """The separate benchmarks' times and the paired benchmarks' ratios (paired.h) of one run."""
    times = {key: ms for key, ms in rows(result).items() if not key[0].startswith("BM_Paired")}
    return times, medians(result, "ratio")


def table(times):
    lines = ["| benchmark | threads | ms | × copy |", "|---|---|---|---|"]
    for (key, threads), ms in times.items():
        copy = times[("BM_Copy", threads)]
        lines.append(f"| {key[3:]} | {threads} | {ms:.2f} | {ms / copy:.2f} |")
    return "\n".join(lines)


def ratio(times, a, b, threads):
    return times[(a, threads)] / times[(b, threads)]


# Calibrators; the histogram pass and compute_amax also with their AVX2 versions (what a CPU
# without AVX-512 runs).
calib, calib_paired = times_and_pairs(run({}, calib_binary))
with open("/proc/cpuinfo") as f:
    flags = next((line for line in f if line.startswith("flags")), "").split()
isa = "AVX-512" if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= set(flags) else (
    "AVX2" if "avx2" in flags else "scalar")
# On a CPU without AVX-512 the first run already measured the AVX2 versions.
calib_avx2 = rows(run({"TORCHQUANT_CPU_ISA": "avx2"}, calib_binary,
                      ["--benchmark_filter=BM_Copy|BM_HistCollect|BM_ComputeAmax"])) if (
    isa == "AVX-512") else None
default, default_pairs = times_and_pairs(run({}))
thp = rows(run({"THP_MEM_ALLOC_ENABLE": "1"}, args=["--benchmark_filter=-Paired"]))
# A caching allocator (jemalloc from Debian's libjemalloc2, installed by scripts/setup.sh) keeps
# freed 64 MB blocks, as a training loop's allocator would; glibc cannot (its mmap threshold
# stops at 32 MB), so every fresh output of the default run page-faults.
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
if not os.path.exists(JEMALLOC):
    sys.exit(f"bench-report: {JEMALLOC} is missing; run scripts/setup.sh (package libjemalloc2)")
# Decay off: jemalloc otherwise hands idle pages back after 10 s, and a benchmark that is not
# running (its baseline is) would find them gone.
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
cached, cached_pairs = times_and_pairs(run({"LD_PRELOAD": JEMALLOC, "MALLOC_CONF": JEMALLOC_CONF}))
torch_version = open(os.path.join(root, "scripts", "torch-version.txt")).read().strip()
cpu = "unknown"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass

def op_summary(times, pairs):
    """Speed-up rows and goal rows (issue 3) of one allocator's run; the goals against the copy
    are judged on the paired ratios (the op and the copy alternating within each iteration), the
    separate benchmarks' ratio in brackets."""
    speedups, goals, network = [], [], []
    for kind in ("PerTensor", "PerChannel"):
        for t in ("1", "2"):
            fb = f"BM_TorchQuant_FwdBwd/{kind}"
            vs_aten = ratio(times, f"BM_Aten_FwdBwd/{kind}", fb, t)
            vs_recipe = ratio(times, f"BM_Recipe_FwdBwd/{kind}", fb, t)
            speedups.append(
                f"| {kind} | {t} | {vs_aten:.1f}× | {vs_recipe:.1f}× "
                f"| {ratio(times, f'BM_Aten_Fwd/{kind}', f'BM_TorchQuant_FwdPrealloc/{kind}', t):.1f}× |")
            fwd = ratio(times, f"BM_TorchQuant_FwdPrealloc/{kind}", "BM_Copy", t)
            fwd_p = pairs[(f"BM_PairedTorchQuant_FwdPrealloc/{kind}", t)]
            fresh = ratio(times, f"BM_TorchQuant_Fwd/{kind}", "BM_Copy", t)
            both = ratio(times, fb, "BM_Copy", t)
            both_p = pairs[(f"BM_PairedTorchQuant_FwdBwd/{kind}", t)]
            ok = lambda v, goal, le=True: "met" if (v <= goal if le else v >= goal) else "missed"
            goals.append(
                f"| {kind} | {t} | {fwd_p:.2f}× paired ({fwd:.2f}× separate; {ok(fwd_p, 1.3)}) "
                f"| {fresh:.2f}× ({ok(fresh, 1.3)}) "
                f"| {both_p:.2f}× paired ({both:.2f}× separate; {ok(both_p, 2.6)}) "
                f"| {vs_aten:.1f}× ({ok(vs_aten, 5, False)}) "
                f"| {vs_recipe:.1f}× ({ok(vs_recipe, 5, False)}) |")
            ho = f"BM_TorchQuant_FwdBwdHandedOver/{kind}"
            ho_copy = ratio(times, ho, "BM_Copy", t)
            ho_aten = ratio(times, f"BM_Aten_FwdBwdHandedOver/{kind}", ho, t)
            ho_recipe = ratio(times, f"BM_Recipe_FwdBwd/{kind}", ho, t)
            network.append(
                f"| {kind} | {t} | {ho_copy:.2f}× ({ok(ho_copy, 2.6)}) "
                f"| {ho_aten:.1f}× ({ok(ho_aten, 5, False)}) "
                f"| {ho_recipe:.1f}× ({ok(ho_recipe, 5, False)}) |")
    return "\n".join(speedups), "\n".join(goals), "\n".join(network)


def streamed_table(pairs):
    """The paired ratios again, against a copy that also writes with streaming stores."""
    lines = ["| amax | threads | streamed copy (× copy) | fwd, preallocated output (× streamed "
             "copy) | fwd+bwd (× streamed copy) |", "|---|---|---|---|---|"]
    for kind in ("PerTensor", "PerChannel"):
        for t in ("1", "2"):
            sc = pairs[("BM_PairedCopyStreamed", t)]
            fwd = pairs[(f"BM_PairedTorchQuant_FwdPrealloc/{kind}", t)]
            both = pairs[(f"BM_PairedTorchQuant_FwdBwd/{kind}", t)]
            lines.append(f"| {kind} | {t} | {sc:.2f}× | {fwd / sc:.2f}× | {both / sc:.2f}× |")
    return "\n".join(lines)


def last_level_cache_bytes():
    """The size the library reads (src/util/streaming_stores.cpp): the highest cache level Linux
    lists for CPU 0, else getconf's (glibc's sysconf, which a VM can get wrong), else 0."""
    best_level, size = 0, 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        number = int(text.rstrip("KMG") or 0) * units.get(text[-1:], 1)
        if level > best_level and number > 0:
            best_level, size = level, number
    if size > 0:
        return size
    try:
        return int(subprocess.run(["getconf", "LEVEL3_CACHE_SIZE"], capture_output=True,
                                  text=True, check=True).stdout.strip() or 0)
    except (OSError, ValueError, subprocess.CalledProcessError):
        return 0


llc = last_level_cache_bytes()
llc_text = f"{llc / 2**20:.0f} MiB here" if llc > 0 else "unknown here: 32 MiB assumed"
speedups, op_goals, op_network = op_summary(cached, cached_pairs)
streamed = streamed_table(cached_pairs)


def dtype_table(pairs):
    """The preallocated forward per tensor in three dtypes, AVX2 loop against generic loop,
    scaled_e4m3 against ATen's float8 cast, and fake_affine_tensor_quant against upstream's ATen
    composition: paired ratios to a copy of the same tensor."""
    lines = ["| op | threads | torchquant (× copy) | baseline (× copy) | speed-up |",
             "|---|---|---|---|---|"]
    for dtype in ("Float", "Half", "BFloat16"):
        for t in ("1", "2"):
            fast = pairs[(f"BM_PairedFwdDtype/{dtype}_Avx2Loop", t)]
            slow = pairs[(f"BM_PairedFwdDtype/{dtype}_GenericLoop", t)]
            lines.append(f"| fake_tensor_quant_out, {dtype} (baseline: the generic loop) | {t} "
                         f"| {fast:.2f}× | {slow:.2f}× | {slow / fast:.1f}× |")
    for t in ("1", "2"):
        ours = pairs[("BM_PairedE4m3/TorchQuant", t)]
        aten = pairs[("BM_PairedE4m3/AtenFloat8Cast", t)]
        lines.append(f"| scaled_e4m3, Float (baseline: ATen's float8 cast) | {t} | {ours:.2f}× "
                     f"| {aten:.2f}× | {aten / ours:.1f}× |")
    for dtype, mask in (("Float", ""), ("Float", "WithMask"), ("Half", ""), ("BFloat16", ""),
                        ("Double", "")):
        for t in ("1", "2"):
            ours = pairs[(f"BM_PairedAffine/{dtype}_TorchQuant{mask}", t)]
            theirs = pairs[(f"BM_PairedAffine/{dtype}_Composite{mask}", t)]
            what = f"{dtype}, with its mask" if mask else dtype
            lines.append(f"| fake_affine_tensor_quant, {what} (baseline: upstream's ATen ops) "
                         f"| {t} | {ours:.2f}× | {theirs:.2f}× | {theirs / ours:.1f}× |")
    return "\n".join(lines)


dtypes = dtype_table(cached_pairs)
speedups_default, op_goals_default, op_network_default = op_summary(default, default_pairs)

def calib_section():
    lines = ["| benchmark | threads | ms | × copy |", "|---|---|---|---|"]
    entries = [(key[3:], calib, key) for key in ("BM_Copy", "BM_AtenAbsMax", "BM_MaxCollect",
                                                   "BM_AtenHistc", "BM_HistCollect",
                                                   "BM_HistCollectRelu")]
    if calib_avx2:
        entries += [(f"{key[3:]} (AVX2 version; its own run's copy)", calib_avx2, key)
                    for key in ("BM_Copy", "BM_HistCollect", "BM_HistCollectRelu")]
    for label, times, key in entries:
        for t in ("1", "2"):
            ms = times[(key, t)]
            lines.append(f"| {label} | {t} | {ms:.2f} | {ms / times[('BM_Copy', t)]:.2f} |")
    avx2_head, avx2_rule = (" time (AVX2 version) |", "---|") if calib_avx2 else ("", "")
    amax = [f"| method | bins | time |{avx2_head} goal | upstream (Python) |",
            f"|---|---|---|{avx2_rule}---|---|"]
    goals = {("Entropy", "2048"): ("≤ 2 ms", "1.12 s"), ("Entropy", "4096"): ("≤ 8 ms", ""),
             ("Mse", "2048"): ("≤ 1 ms", "137 ms (CUDA only)"), ("Mse", "4096"): ("", ""),
             ("Percentile", "2048"): ("≤ 0.05 ms", ""), ("Percentile", "4096"): ("", "")}
    for method in ("Entropy", "Mse", "Percentile"):
        for bins in ("2048", "4096"):
            us = calib[(f"BM_ComputeAmax{method}", bins)]
            avx2 = (f" {calib_avx2[(f'BM_ComputeAmax{method}', bins)] / 1000:.3f} ms |"
                    if calib_avx2 else "")
            goal, upstream = goals[(method, bins)]
            amax.append(f"| {method.lower()} | {bins} | {us / 1000:.3f} ms |{avx2} {goal} | "
                        f"{upstream} |")
    return "\n".join(lines), "\n".join(amax)


def pass_parts():
    """The histogram pass in parts (1 thread), each as a ratio to the same run's copy."""
    lines = ["| part | ms | × copy |", "|---|---|---|"]
    copy = calib[("BM_Copy", "1")]
    for key, label in (("BM_HistCollect", "the whole collect"),
                       ("BM_HistPassCodesStreamed", "bin codes, data from memory"),
                       ("BM_HistPassCodesCached", "bin codes, data in the cache"),
                       ("BM_HistPassIncrements", "increments alone (one per value)"),
                       ("BM_HistPassCountStreamed", "AVX2 counting loop, data from memory"),
                       ("BM_HistPassCountCached", "AVX2 counting loop, data in the cache")):
        if (key, "1") not in calib:
            continue  # the counting loop where the CPU's version has none
        ms = calib[(key, "1")]
        lines.append(f"| {label} (`{key[3:]}`) | {ms:.2f} | {ms / copy:.2f} |")
    return "\n".join(lines)


def other_data():
    """The histogram collect on other data than gaussian (not goals): paired ratios."""
    lines = ["| data | 1 thread | 2 threads |", "|---|---|---|"]
    for key, label in (("BM_PairedHistCollect", "gaussian (the goal's data)"),
                       ("BM_PairedHistCollectRelu", "relu: half exact zeros"),
                       ("BM_PairedHistCollectLevels", "255 levels (fake-quantized)"),
                       ("BM_PairedHistCollectPeaked", "80% one value"),
                       ("BM_PairedHistCollectClipped", "clamped to [-1, 1]: a third at the top")):
        lines.append(f"| {label} (`{key[9:]}`) | {calib_paired[(key, '1')]:.2f}× "
                     f"| {calib_paired[(key, '2')]:.2f}× |")
    return "\n".join(lines)


calib_table, amax_table = calib_section()
other_table = other_data()
pass_table = pass_parts()
avx2_rows = ("the AVX2 rows come from a second run of the same binary with "
             "`TORCHQUANT_CPU_ISA=avx2` and are ratios to that run's copy." if calib_avx2 else
             f"this CPU runs the {isa} version, which every row measures.")
# Earlier reports of other machines, kept beside this one (docs/benchmarks-<machine>.md).
archived = sorted(name for name in os.listdir(os.path.join(root, "docs"))
                  if name.startswith("benchmarks-") and name.endswith(".md"))
archived_line = ("Reports of other machines, kept as they were generated: " +
                 ", ".join(f"[{name}]({name})" for name in archived) + ". " if archived else "")


# glibc returns freed blocks above its thresholds to the kernel and page-faults them back on the
# next step; raising the thresholds keeps them, as a caching allocator would.
MALLOC_KEEP = "glibc.malloc.trim_threshold=4294967296:glibc.malloc.mmap_threshold=33554432"


def run_model(env_extra, repetitions=7):
    """Median time (ms), peak_MB and (paired benchmarks) median ratio of every bench_model
    benchmark, by (name, threads), the repetitions of all benchmarks in random interleaved order
    (as `run`)."""
    env = dict(os.environ, **env_extra)
    out = subprocess.run([model_binary, "--benchmark_format=json",
                          f"--benchmark_repetitions={repetitions}",
                          "--benchmark_enable_random_interleaving=true"],
                         env=env, check=True, capture_output=True, text=True).stdout
    times, peaks, ratios = {}, {}, {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        parts = b["run_name"].split("/")
        key = (parts[0], parts[1])
        times.setdefault(key, []).append(b["real_time"])
        peaks[key] = b.get("peak_MB")
        if "ratio" in b:
            ratios.setdefault(key, []).append(b["ratio"])
    return {key: (median(t), peaks[key], median(ratios[key]) if key in ratios else None)
            for key, t in times.items()}


# (benchmark, its baseline, goal as a ratio, upstream pytorch_quantization ratio from issue 9,
# the paired benchmark that times the two alternately within each iteration)
MODEL_ROWS = [
    ("BM_FakeQuantForwardDynamic", "BM_FloatForward", 1.2, None, "BM_PairedDynamic"),
    ("BM_FakeQuantForwardCalibrated", "BM_FloatForward", None, None, "BM_PairedCalibrated"),
    ("BM_CalibrationBatch", "BM_FloatForward", 1.2, 1.83, "BM_PairedCalibrationBatch"),
    ("BM_FakeQuantForwardBackward", "BM_FloatForwardBackward", 1.15, 1.44,
     "BM_PairedForwardBackward"),
]


def model_section(model):
    lines = ["| benchmark | threads | ms | baseline ms | × baseline, separate | "
             "× baseline, paired | goal | upstream |",
             "|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for key, base, goal, upstream, pair in MODEL_ROWS:
        for t in ("1", "2"):
            ms = model[(key, t)][0]
            base_ms = model[(base, t)][0]
            r = ms / base_ms
            paired = model[(pair, t)][2]
            g = f"≤ {goal}×" if goal else ""
            if goal:
                verdicts.append(f"{key[3:]} ({t} thread{'s' if t == '2' else ''}): {paired:.3f}× "
                                f"{base[3:]} paired ({r:.2f}× separate) — "
                                f"{'met' if paired <= goal else 'missed'}")
            lines.append(f"| {key[3:]} | {t} | {ms:.1f} | {base_ms:.1f} ({base[3:]}) | {r:.2f} | "
                         f"{paired:.2f} | {g} | {f'{upstream}×' if upstream else ''} |")
    float_mb = model[("BM_FloatForwardBackward", "1")][1]
    fq_mb = model[("BM_FakeQuantForwardBackward", "1")][1]
    mem = fq_mb / float_mb
    verdicts.append(f"training-step peak memory: {fq_mb:.1f} MB vs {float_mb:.1f} MB float = "
                    f"{mem:.3f}× — {'met' if mem <= 1.1 else 'missed'} (goal ≤ 1.1×)")
    return "\n".join(lines), "\n".join(f"- {v}" for v in verdicts)


model_table, model_goals = model_section(run_model({}))
model_table_keep, model_goals_keep = model_section(run_model({"GLIBC_TUNABLES": MALLOC_KEEP}))


def verdict(key, goal):
    """Judged on the paired ratio (the collect and the copy alternating within each iteration);
    the separate benchmarks' ratio in brackets."""
    parts = []
    for t in ("1", "2"):
        r = calib[(key, t)] / calib[("BM_Copy", t)]
        p = calib_paired[(key.replace("BM_", "BM_Paired"), t)]
        parts.append(f"{p:.3f}× copy with {t} thread{'s' if t == '2' else ''} paired "
                     f"({r:.2f}× separate; {'met' if p <= goal else 'missed'})")
    return ", ".join(parts)


AMAX_GOALS_US = [("Entropy", "2048", 2000), ("Entropy", "4096", 8000), ("Mse", "2048", 1000),
                 ("Percentile", "2048", 50)]
amax_verdicts = ", ".join(
    f"{m.lower()} {b} bins {calib[(f'BM_ComputeAmax{m}', b)] / 1000:.3f} ms "
    f"({'met' if calib[(f'BM_ComputeAmax{m}', b)] <= goal else 'missed'})"
    for m, b, goal in AMAX_GOALS_US)

calib_goals = f"""- MaxCalibrator collect ≤ 0.6× copy: {verdict("BM_MaxCollect", 0.6)}.
- HistogramCalibrator collect ≤ 1.5× copy: {verdict("BM_HistCollect", 1.5)}; on relu(x)
  (half zeros): {verdict("BM_HistCollectRelu", 1.5)}. Where the time goes on the Xeon VM (`perf record` of
  `build/tests/benchmarks/bench_calib --benchmark_filter=HistCollect/1`): the per-element count
  increments (one load and one store each, spread over four interleaved sub-histograms so that
  runs of one bin do not wait on each other), then the vector pass that reads the data and writes
  the bin codes (with AVX-512: 16 elements a step, the fraction from one `vreduceps`; the ~0.4%
  of elements within 2^-20 × bins of a bin boundary go to a separate list that at::histc's
  division decides, so counting the codes needs no branch). Exact zeros are counted with a
  popcount and never written out, so relu(x) costs fewer increments. The next block is prefetched while a block is
  counted: without that every 2 KiB block began with a wait for memory (a third of the pass on
  the Xeon VM). The AVX2 version computes 8 bins a step and counts most blocks directly in one
  histogram, the bins' arithmetic overlapping the increments (docs/calibration.md, "The CPU
  counting pass"; measured on an AVX2-only AMD EPYC: the section "AVX2 only: AMD EPYC (Zen 2)").
- compute_amax: {amax_verdicts}; upstream's Python takes 1.12 s (entropy) and 137 ms (mse, CUDA
  only) on this kind of histogram. Half of the entropy search's time was its logarithms (one per
  merged bin and candidate); they are now taken in batches through glibc's vector log (libmvec,
  AVX-512 or AVX2), which made it about three times faster on the Xeon VM. The mse search scores a
  candidate level by level, and its level loop takes 8 levels a step with AVX-512 (4 with AVX2):
  each level's boundary guessed, checked with gathered probes, its prefix sums gathered (the loop
  was one level at a time, each boundary search waiting on the one before: 1.1-1.2 ms)."""

doc = f"""# Benchmarks

Generated by `scripts/bench-report.py` (run `./scripts/run-tests.sh` first, then
`.venv/bin/python scripts/bench-report.py`). Every figure is measured in the same binary and run
as its baseline, and reported as a ratio to it: a streaming copy of the same tensor
(`out.copy_(x)` into a preallocated output) for ops and calibrators, the float model for the
model benchmark. Timings are wall-clock (Google Benchmark, `UseRealTime`, each run at least 0.5 s,
1 s for the model): every benchmark runs 5 times (the model 7), all repetitions of a binary in
random interleaved order, and a figure is the median of its repetitions, the baseline's too.
This is a shared 2-core VM: single runs varied by 15-30% from one run to the next, and by more
at times; interleaving spreads that drift over a benchmark and its baseline alike. Drift within
seconds remains, so the goals against a baseline are judged on *paired* benchmarks (`paired.h`):
the measured code and its baseline alternate within every iteration, each timed on its own, and
the figure is the ratio of their summed times (median of the repetitions). The separate ratio is
shown beside it.

Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}.
{archived_line}The tables and the goal lines are this run's; the prose analyses (where the time
goes, `perf` shares, timings of parts) give the machine they were measured on: most on the Intel
Xeon VM (AVX-512) of [benchmarks-xeon.md](benchmarks-xeon.md), the section "AVX2 only: AMD EPYC
(Zen 2)" on an AMD EPYC VM.
LibTorch {torch_version} (PyPI wheel), GCC Release build (-O3; the float32 fake-quant forward in AVX2
intrinsics per tensor and per row, other ops and layouts with an AVX2 clone picked at load time;
the histogram pass with its {isa} version, dispatched by hand).

## Ops: fp32, 64×256×32×32 (16M elements, 64 MB)

- `TorchQuant_Fwd`: `fake_tensor_quant` returning a fresh tensor.
- `TorchQuant_FwdPrealloc`: `fake_tensor_quant_out` into a preallocated tensor.
- `TorchQuant_FwdBwd`: forward with autograd (output + a mask of 1 bit per element), then
  `backward(grad)` with a gradient the caller keeps: the backward writes a new tensor.
- `*_FwdBwdHandedOver`: the same forward, then the backward node called with a gradient that
  nobody else holds, as the next layer's backward (a convolution's, a matmul's) hands it over in a
  network; torchquant then writes the masked gradient into it (ATen's backward allocates anyway).
- `PairedTorchQuant_*`: `FwdPrealloc` and `FwdBwd` alternating with the copy (goal columns).
- `Aten_*`: ATen's `fake_quantize_per_tensor_affine` / `fake_quantize_per_channel_affine` (+ backward).
- `Recipe_*`: pytorch_quantization's CPU recipe as separate ATen ops (abs/max, mul, round, clamp,
  div; `where` for backward).

### Goals (issue 3), with a caching allocator (jemalloc)

What a training loop sees: its allocator keeps freed blocks, so a step's fresh outputs reuse
memory that is already mapped. All variants ran in the same binary and run, with
`LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF={JEMALLOC_CONF}` (Debian's
libjemalloc2, installed by `scripts/setup.sh`).

| amax | threads | fwd, preallocated output (≤ 1.3× copy) | fwd, fresh output (≤ 1.3×) | fwd+bwd (≤ 2.6× copy) | fwd+bwd vs ATen (≥ 5×) | fwd+bwd vs recipe (≥ 5×) |
|---|---|---|---|---|---|---|
{op_goals}

Outputs at least as large as the last-level cache ({llc_text}) are written with streaming
(non-temporal) stores (`src/util/streaming_stores.h`): straight to memory, without first reading
each line into the cache as a regular store does, which a copy of such a tensor spends a third of
its traffic on. So an op can cost less than the copy baseline above, which writes with regular
stores (ATen's `copy_`). Against a copy that streams too (`BM_PairedCopyStreamed`, our
`stream_copy`), with jemalloc:

{streamed}

Other dtypes and FP8 (not goals; jemalloc, paired): the forward into a preallocated output per
tensor in float32, float16 and bfloat16 through the AVX2 loop (`src/ops/cpu/fake_quant_avx2.cpp`)
and through the generic loop that runs under `TORCHQUANT_CPU_ISA=scalar` (16-bit values converted
one at a time in software there), each against a copy of the same tensor in its dtype
(`BM_PairedFwdDtype`); `scaled_e4m3` (a fresh output) and ATen's cast of the scaled tensor to
`Float8_e4m3fn` and back (which does not saturate: a baseline, not the same op) against the
float32 copy (`BM_PairedE4m3`); `fake_affine_tensor_quant` (a fresh output; the fused kernel of
`src/ops/cpu/affine_kernel.cpp`, and upstream's composition of ATen ops, which it replaced on the
CPU and which still runs on other devices; with its mask: the packed bits autograd saves, against
upstream's `logical_and` of two comparisons) against a copy in its dtype (`BM_PairedAffine`).

{dtypes}

The forward+backward goals again, with the gradient handed over as in a network
(`*_FwdBwdHandedOver`; the recipe's `where` allocates either way, so its figure is the same run's
`Recipe_FwdBwd`). The backward then reads the 1-bit mask and writes only where it is clear (the
clipped elements); the step costs about the forward's traffic.

| amax | threads | fwd+bwd (≤ 2.6× copy) | fwd+bwd vs ATen (≥ 5×) | fwd+bwd vs recipe (≥ 5×) |
|---|---|---|---|---|
{op_network}

The same goals with glibc's default allocator, which unmaps every 64 MB block on free and
page-faults it back on first touch (4 KiB pages, about 4 ms per fresh 64 MB output on the Xeon VM,
more than the kernel itself): a fresh output cannot meet them there; `fake_tensor_quant_out`
into a preallocated tensor or a caching allocator (jemalloc, tcmalloc) are the fast paths.

| amax | threads | fwd, preallocated output (≤ 1.3× copy) | fwd, fresh output (≤ 1.3×) | fwd+bwd (≤ 2.6× copy) | fwd+bwd vs ATen (≥ 5×) | fwd+bwd vs recipe (≥ 5×) |
|---|---|---|---|---|---|---|
{op_goals_default}

| amax | threads | fwd+bwd, handed over (≤ 2.6× copy) | vs ATen (≥ 5×) | vs recipe (≥ 5×) |
|---|---|---|---|---|
{op_network_default}

### Speed-ups of torchquant (jemalloc)

| amax | threads | fwd+bwd vs ATen | fwd+bwd vs recipe | fwd (prealloc) vs ATen fwd |
|---|---|---|---|---|
{speedups}

### With jemalloc

{table(cached)}

### Default allocator

{table(default)}

### With `THP_MEM_ALLOC_ENABLE=1` (LibTorch's allocator asks for transparent huge pages)

The fast paths for fresh outputs: set `THP_MEM_ALLOC_ENABLE=1` in the environment, or pass a
preallocated output to `fake_tensor_quant_out`.

{table(thp)}

## Calibrators: fp32, 64×256×32×32 (16M elements), `build/tests/benchmarks/bench_calib`

- `AtenAbsMax`: `x.abs().max()` (upstream MaxCalibrator's way); `MaxCalibrator::collect`: one
  vectorised integer max over the float bits (max |x| and the NaN/Inf check together).
- `AtenHistc`: `at::histc(x.abs(), 2048, 0, max)` alone (upstream's collect also needs abs, max,
  and float32 counts); `HistCollect`: `HistogramCalibrator::collect` in steady state (range known,
  one fused pass: bin index, max |x| and NaN check, int64 counts); `HistCollectRelu`: the same on
  `relu(x)` (half exact zeros, like an activation after a ReLU).
- `Paired*` (goals judged on these): the collect and the copy alternate within every iteration,
  each timed on its own, and the ratio of their summed times is the figure (median of the
  repetitions): both see the same drift of this VM. The paired copy also leaves the collect's
  input partly evicted from the cache, as a new batch would be; the separate MaxCollect reads a
  tensor that stays cached between its own iterations, which is why its separate ratio is lower.
- The histogram pass dispatches by hand to its AVX-512, AVX2 or scalar
  version (the best the CPU runs, capped by `TORCHQUANT_CPU_ISA`); {avx2_rows}

{calib_table}

The histogram pass in parts (1 thread, 16M values, the CPU's version of the bin codes; see the
benchmark's comments in `tests/benchmarks/bench_calib.cpp`):

{pass_table}

The histogram collect on other data (paired, × the copy; not goals: where the counting meets
runs of one bin, zeros, and values on the range's top):

{other_table}

### compute_amax on a histogram of 16M |gaussian| values (1 thread)

{amax_table}

Goals (issue 5), measured in this run:

{calib_goals}

## Model: quantization cost in a training step (`build/tests/benchmarks/bench_model`)

A CIFAR-style ResNet (ResNet-20's layout with two blocks per stage: 15 convolutions, 16/32/64
channels, batch norm, ReLU, residual additions, a linear head) on a 32×3×32×32 batch, as plain
`torch::nn` (the baseline) and with torchquant's quant layers (int8, weights per output channel,
activations per tensor), same weights, in the same binary and run. Medians of 7 repetitions.

Two ratios per row. *Separate*: the medians of the benchmark and of its baseline, each run on its
own for at least a second, seconds apart. *Paired* (`BM_Paired*`): both models in every
iteration, one after the other in alternating order, each timed on its own; the ratio of their
summed times, median over the repetitions. These VMs' speed drifts within seconds (on the Xeon
VM the float forward alone measured 21 to 61 ms within an hour), which moves the separate ratio by 0.1-0.3
between runs of the same code; pairing exposes both models to the same drift. The goals are
judged on the paired ratio; the separate one is kept for comparison with earlier reports.

- `FloatForward` / `FakeQuantForward*`: eval mode, no gradients; `Dynamic`: no amax (computed
  from every batch), `Calibrated`: amax from max calibration.
- `CalibrationBatch`: one batch in `utils::calibrate`'s collect mode: histogram calibrators on the
  16 activation inputs, max calibrators on the weights, quantization off.
- `FloatForwardBackward` / `FakeQuantForwardBackward`: train mode, `forward(x).sum().backward()`;
  `peak_MB`: the most bytes of CPU tensors live during the step above what was live before it
  (a counting `c10::Allocator` installed in the binary, `memory_tracker.h`).
- Upstream: pytorch_quantization on the same machine, as reported in issue 9 (fake-quant
  forward+backward 1.44× float, calibration batch 1.83× float forward).

### Default glibc allocator

Every step, glibc hands the large activation buffers back to the kernel and page-faults them in
again; that kernel time (up to a third of the samples in `perf`) varies from run to run on this
VM, for the float and the quantized model alike.

{model_table}

Goals (issue 9), measured in this run:

{model_goals}

### Allocator keeping its memory (`GLIBC_TUNABLES={MALLOC_KEEP}`)

What a training loop sees with a caching allocator (jemalloc, tcmalloc, or these glibc tunables):
the same binary, freed blocks stay in the process.

{model_table_keep}

{model_goals_keep}

What makes these ratios: QuantConv's training path is one autograd node (`set_fused_quant_conv`,
default on) that keeps the layer's input and weight, which the float graph keeps too, and
recomputes the quantized operands and their masks in backward, instead of saving a quantized
copy and a mask per activation (an earlier run of the unfused graph: 1.68× the float step's
memory, 1.47× its time); on the CPU the node quantizes into a per-thread buffer reused by every
layer (about 2 MB here, held between steps and not in `peak_MB`, which counts what a step adds)
and masks the input gradient in place; the straight-through masks are bits; dynamic amax and per-channel weight amax use a vectorised max |x|
(ATen's infinity norm is scalar code and made the dynamic forward 2.2× float); the scales of a
float32 CPU amax are computed in one loop instead of a dozen small ATen ops (about 50 µs a call,
30 calls a forward); the straight-through backward is a branch-free vectorised select; the
histogram increments are spread over four sub-histograms.

Where the calibration batch's time goes, on the Xeon VM (where the 2-thread goal was missed:
1.20-1.22 paired; its faster convolutions leave the pass a larger share). Timers put
temporarily around `HistogramCalibrator::collect` (not committed; `BM_CalibrationBatch`, one run):
the 16 collects of a batch count 4.95M activation values in 4.9 ms with 1 thread and 3.1 ms with
2, about 1 and 0.6 ns per value, against 0.7 and 0.4 ns for the same pass over a tensor that stays
in the cache between calls; each collect also cost about 10 µs whatever its size (a 1024-value
tensor), and 37-47 µs once the layer between two collects had flushed the caches (its state
copied, a dozen small tensor ops, the pass's buffers allocated and cleared). That fixed cost is now
12-13 µs cold: a contiguous float32 batch within the known range skips the state copy and the
tensor ops, and each thread keeps the pass's buffers; a weight's max collect went from 15-18 to
3-6 µs (its NaN check a plain loop). The paired 2-thread ratio moved from 1.24-1.30 to 1.19-1.22.
The counting is nearly all of the batch's extra time. The pass is bound by its stores: every
non-zero value is one read-modify-write of a counter, and those commit at about one per cycle,
which the counting loop nearly reaches. Tried and dropped: increments through 64-bit
pointers (three micro-ops each instead of five; no change) and counting each 16 values right after
their codes instead of per 512-value block (1.5-2.5× slower). With 2 threads the float model's
convolutions speed up more than the pass does, so the ratio is higher there. A per-thread memo that
let a second calibrator reuse the pass over the same tensor (each downsampling block's first
convolution and its downsample share their input) saved 2-4% and was reverted: the tensor's
version counter, its only guard, misses writes through `Tensor::data()` and raw pointers (a batch
copied into a reused input buffer), which would have given a calibrator another batch's counts.
With timers around the fused inference path (`BM_FakeQuantForwardCalibrated`, also removed),
quantizing the inputs took 1.8 / 1.2 ms per forward (1 / 2 threads) and the weights 0.3 ms, of
28 / 21 ms.

## Where the op time goes (issue 3)

- Forward: one fused pass that reads x and writes y (and, under autograd, a bit mask of 1/32 of
  y's size): the copy's memory traffic, so with a preallocated output or a caching allocator it
  runs at about the copy's speed; a fresh 64 MB output from glibc's default allocator is mapped
  anew and page-faults on first touch.
- Forward+backward: the forward above, then a backward that reads the incoming gradient and the
  mask and writes the input gradient: about 2.1× the copy's traffic. `perf record` of
  `LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 build/tests/benchmarks/bench_ops --benchmark_filter=TorchQuant_FwdBwd/PerTensor/1`
  on the Xeon VM: 28% of the samples in the forward kernel, 22% in the backward
  kernel, 3.5% packing and unpacking the mask bits, about 10% the benchmark's own setup (random
  data) and the rest page faults and allocator. Both kernels are memory-bound.
- The mask is 1 bit per element on the CPU (it was 1 byte: 16 MB written and read back per
  step at this size, now 2 MB). Where autograd hands the backward node a gradient that nobody
  else holds (the next layer's backward made it: `fake_tensor_quant`'s node checks the tensor's
  and its memory's use counts, as AccumulateGrad does before stealing a gradient; QuantConv's
  fused node owns the gradient of its own convolution), the mask is applied in place: only the
  elements whose bit is clear are written, and a 64-element word of set bits is skipped, so the
  backward reads the 2 MB mask and little else (`*_FwdBwdHandedOver`). A gradient the caller of
  `backward()` passed, or that a hook kept, gets a new tensor (`TorchQuant_FwdBwd`).
- CUDA: the kernels compile and link in CI; no GPU was lent to this task, so there is no CUDA
  figure yet. `build/tests/benchmarks/bench_cuda` (built with the CUDA kernels) measures the
  forward, the forward with its mask, the straight-through backward and the histogram against a
  device-to-device copy of the same tensor in bytes per second (goal: >= 85% of the copy's); where
  no GPU is visible it reports that and measures nothing. On a GPU machine it runs through
  `scripts/device-check.sh` (docs/reliability.md, "CUDA"), which writes this section's table.

## AVX2 only: AMD EPYC (Zen 2)

Measured on 2026-12-02 on an AMD EPYC VM (family 23, model 49: Zen 2; 2 vCPUs at about 3.35 GHz;
AVX2 without AVX-512; 32 KiB L1 data cache and 512 KiB L2 per core, 16 MiB L3), over three
sessions; A/B figures are alternating runs of the benchmark binary against the previous library
(through `LD_LIBRARY_PATH`), paired ratios or milliseconds of 16M values:

- **Histogram collect.** With codes then increments (the AVX-512 design) it cost 1.6-2.4× the
  copy there (1.5× on the Xeon). `BM_HistPass*` split it: the bin codes took 7.6-8.8 ms with the
  data cached (9.2-12.5 ms from memory), the increments alone 7.4-12.7 ms, the copy 7.4-9.8 ms:
  the two halves ran one after the other, each about a copy. A microbenchmark of increments
  alone measured about 1.5 cycles each to random cache lines (a store each; stores to one line
  run at one a cycle). The AVX2 counting loop computes 8 bins and increments them in the same
  step: with the data cached it runs near that bound (9.4-9.7 ms, 16 cycles per 8 values), from
  memory 14 ms. The cost of reading from memory grew with the histogram's size (1 thread, data
  from a 4 MiB window, against a 32 KiB one: +1.5 ms with 128 bins, +3.7 ms with 2048, +8 ms with
  8192): the streamed data evicts the histogram's lines, presumably through the inclusive L2,
  and they are fetched again. Hence one histogram, not four: collect of gaussian data 14.0-14.2
  ms with one, 15.0-15.3 with two, 16.5 with four. Gaussian data: 16.8-17.2 -> 14.4-14.9 ms with
  1 thread, 8.6-8.7 -> 8.3-8.4 with 2; relu data unchanged (its blocks go by codes, as do those
  with a repeated bin: 80%-one-value data 3-5% slower than before, 255-level data 15.1 ->
  13.6 ms). Tried and not kept: the loop storing its 8 slots and loading them back (18.5-19.8
  ms, against 16.5 extracting them, both with four histograms); a software prefetch 1-4 KiB ahead
  in the loop (T0, T1 or NTA: no change); a prefetch for writing of the histogram's 129 lines
  after each block (+1.2 ms); four streams of blocks a quarter of the range apart (collect
  1.9-2.0 -> 2.2-2.3× the copy). Earlier: storing a step's 8 codes without the left-pack
  permutation when it drops none (gaussian 7-11% faster, relu 2-50% slower), also chosen per
  512-value block (gaussian 16.3-17.4 -> 14.9-15.1 ms, relu 12.5-12.7 -> 13.4-13.7 ms);
  16-bit sub-histograms (slower; in the counting loop too, a 4 KiB histogram instead of 8 KiB:
  14.2-14.5 -> 15.4-16.0 ms from memory, 10.5 -> 12.1 ms cached); two sub-histograms instead of four in the codes path (no
  change).
- **Values on the range's top.** Data clamped to [-1, 1] (a third of it at |x| = top) took 50.5
  ms with 1 thread (28 with 2): each such value went through the exact division. Putting every
  counted value whose quotient is above num_bins - 1/2 in the last bin directly: 19.4-19.8 ms
  (14 with 2).
- **MaxCalibrator collect**: 0.61-0.73× the copy paired with one stream (goal 0.6), a read-only
  pass bound by what one core reads from one stream. Reading four streams a quarter of the data
  apart side by side: 0.61 / 0.53 -> 0.47 / 0.46× (1 / 2 threads; two streams: 0.55 / 0.50).
  The same four streams in the fake-quant forward's loop (a chunk of each in turn, read and
  write): forward 1.27-1.35 -> 1.13-1.16× the copy with 1 thread but 1.15-1.19 -> 1.25-1.29 with
  2, forward+backward unchanged: not kept; nor blocks of 4096 interleaved (forward 7% faster,
  forward+backward unchanged).
- **The float32 forward in AVX2 intrinsics** (third session). `perf` of the forward into a
  preallocated output: two thirds of the samples in the loop that computed 4 KiB into a stack
  buffer, a third streaming that buffer out; a standalone test of the same arithmetic read,
  computed and streamed 8 values at a time ran 5.4 ms against 7.7 ms for the buffered way (a
  streamed copy: 4.9 ms; the division inside costs 0.1 ms of it). The loop in intrinsics
  (`src/ops/cpu/fake_quant_avx2.cpp`) also writes the mask's bits as a byte per step: with
  autograd recording, the forward had cost 9.0 ms against 6.7 without (the bools, then packing
  them). Python timings of the op (`torch.ops.torchquant.fake_tensor_quant`, 1 thread, jemalloc,
  the faster half of 40 runs; a copy 6.5-6.7 ms): forward 6.7 -> 5.0 ms, with the mask 9.0 ->
  5.5 ms, backward into a new tensor 4.9 -> 4.4 ms, forward+backward 14.1 -> 10.1 ms; paired
  `PairedTorchQuant_FwdBwd` 2.18-2.24 -> 1.59-1.61× the copy (1 thread), 2.03 -> 1.69-1.71× (2).
  Three parts: the loop itself; 32-byte streaming stores instead of 16-byte ones in
  `stream_copy` (a standalone 64 MB copy: 5.6 -> 4.9 ms) with one fence per backward task
  instead of one per 16 KiB block (5.3 -> 4.9 ms); and the loop's pointers, bounds and row in
  registers (GCC reloaded them from the argument struct after every mask byte store, which may
  alias it: forward 5.7 -> 5.0 ms).
- **Streaming stores.** A copy of the 64 MB tensor with non-temporal stores took 0.72-0.74× the
  regular copy's time with 1 thread (0.98-1.05× with 2: both threads' copies then reach the same
  limit). The ops write outputs from the last-level cache's size up that way (16 MiB here, read
  from /sys: glibc's sysconf reported 256 MiB on this VM, which kept them off at first). Same
  binary, `TORCHQUANT_STREAMING_STORES=1` against `0`, paired, per tensor: forward into a
  preallocated output 1.31-1.37 -> 1.01-1.08× the copy (1 thread), 1.17-1.19 -> 0.94-1.03 (2);
  forward+backward with a gradient the caller keeps 2.30-2.37 -> 1.99-2.08, 2.15-2.24 ->
  1.74-1.84. The backward first streamed each 64-element word on its own (a call per 256 bytes):
  2.34-2.43 with 1 thread; runs of all-set words in one call gave the figures above.
- The VM's load from outside varied during both sessions, the 2-thread figures most: while it
  was loaded, the 2-thread collect of gaussian data ran only 1.6× faster than 1 thread (`perf`:
  the OpenMP worker took about 38% more samples than the main thread for its half of the data);
  on a quiet VM the same binary ran it 2.0× faster. Within one benchmark run the copy itself
  measured 7.4 to 9.7 ms.
- The straight-through backward into a new tensor (a gradient its caller keeps) copies the
  gradient and zeroes the cleared bits' elements, as the in-place one does, instead of unpacking
  the mask to bools and selecting: forward+backward 2.52-2.62 -> 2.32-2.43× the copy paired there
  (three alternating runs per version, jemalloc; 1 and 2 threads, per tensor and per channel).
- `MseLevels.EveryVersionSumsTheSameLevels` expected the AVX-512 version to run and failed on
  this CPU; it now checks the AVX2 version where AVX-512 is missing.
"""
with open(os.path.join(root, "docs", "benchmarks.md"), "w") as f:
    f.write(doc)
print(doc)

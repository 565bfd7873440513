"""scripts/cuda-report.py on a sample of bench_cuda's JSON (tests/data/bench_cuda_sample.json)
and on the output of a machine without a GPU."""
import importlib.util
import json
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("cuda_report",
                                              os.path.join(root, "scripts", "cuda-report.py"))
cuda_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cuda_report)

with open(os.path.join(root, "tests", "data", "bench_cuda_sample.json")) as f:
    text = cuda_report.report(json.load(f))
rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in text.splitlines()[2:]}
# Medians of the repetitions (aggregates ignored): copy 4.0e12, forward 3.5e12 -> 88%, met.
assert rows["CudaCopy"] == ["4000", "100%", "baseline"], rows
assert rows["CudaFwd"] == ["3500", "88%", "met"], rows
assert rows["CudaAbsHistogram"] == ["2000", "50%", "missed"], rows
assert rows["CudaSteBackward"][0] == "error: out of memory", rows

no_gpu = {"benchmarks": [{"run_name": "BM_CudaCopy/min_time:0.500/real_time",
                          "run_type": "iteration", "error_occurred": True,
                          "error_message": "no CUDA device visible"}]}
assert cuda_report.report(no_gpu) == "CUDA benchmarks: no figures (no CUDA device visible)\n"
assert "no benchmark ran" in cuda_report.report({"benchmarks": []})
print("cuda report: 6 passed, 0 failed")

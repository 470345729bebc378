"""Run as a child process by `memory.peak_memory`: load one model, run a batch, print peak memory as JSON.

Usage: python -m haste_onnx.measure.memory_child MODEL BATCH.npy LIBRARY THREADS RUNS
"""
import json, resource, sys
import numpy as np
import onnxruntime as ort


def status(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


model, batch, lib, threads, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
x = np.load(batch, allow_pickle=False)
rss_before = status("VmRSS")
hwm_before = status("VmHWM")  # the peak so far: interpreter, numpy, onnxruntime imports
try:  # reset the high-water mark (Linux >= 4.0), so VmHWM below is the peak since the session was made
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
opts = ort.SessionOptions()
opts.register_custom_ops_library(lib)
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
feed = {s.get_inputs()[0].name: x}
for _ in range(runs):
    s.run(None, feed)
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "rss_before_kb": rss_before,
                  "hwm_before_kb": hwm_before, "hwm_kb": status("VmHWM"), "reset": reset}))

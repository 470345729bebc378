"""Measuring models: accuracy (`evaluate`), latency (`bench`) and what they share: the alternating timer
(`timing`), the sessions benchmarks time (`sessions`), instrumented copies with the kernel's counters
(`instrument`), conv work per layer (`conv_work`), a batch predictor (`predictor`), intervals
(`statistics`), the profiler's per-layer times (`profile`), peak memory (`memory`), versions (`versions`)."""

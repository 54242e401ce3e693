"""Side-by-side benchmarks of kfedge (``make bench`` -> ``BENCHMARKS.md``).

Run ``python -m benchmarks.run`` from the repository root (``--quick`` for a short version).
Benchmarks are never timed tests: they compare candidates side by side in one run, report
medians and ratios over several interleaved rounds with warm-up excluded, and state the thread
count, because the machine they run on is small, shared and noisy (ARCHITECTURE.md §6).

Sections:

* :mod:`benchmarks.seeds` — the seeds' table for the built-in sample on this machine.
* :mod:`benchmarks.traps` — the measuring traps of ARCHITECTURE.md §6, demonstrated.
* :mod:`benchmarks.serving` — the kfedge model server: V2 JSON vs V2 binary vs V1.
* :mod:`benchmarks.e2e` — wall time of ``kfedge run`` with defaults.
"""

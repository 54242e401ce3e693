"""Side-by-side benchmarks of kfedge: ``make bench`` -> results JSON -> ``BENCHMARKS.md``.

``python -m benchmarks.run`` measures and saves the results; ``python -m benchmarks.render``
turns them into ``BENCHMARKS.md`` (every figure and sentence computed from the JSON). Benchmarks
are never timed tests: they compare files side by side in one run, in interleaved rounds, each
timing block in a fresh process without TensorFlow, with warm-up excluded, medians with
confidence intervals and ratios paired by round, and the thread count stated.

Sections:

* :mod:`benchmarks.realsize` — MobileNetV2-224 and ResNet50: kfedge's candidates, a hand-written
  ONNX Runtime reference and the peers' files timed side by side.
* :mod:`benchmarks.peers` — Microsoft Olive (its own virtualenv) on the same FP32 ONNX files.
* :mod:`benchmarks.compression` — file and gzip size of pruning, clustering, INT8 and the chain.
* :mod:`benchmarks.seeds` — the seeds' table and every file's accuracy on the built-in sample.
* :mod:`benchmarks.traps` — ORT spinning and TensorFlow in the timing process, demonstrated.
* :mod:`benchmarks.serving` — the kfedge model server: V2 JSON vs V2 binary vs V1.
* :mod:`benchmarks.e2e` — wall time of ``kfedge run`` with defaults.
"""

"""The CPU-class section's Markdown comes from the measured JSON and says what emulation cannot."""

from __future__ import annotations

from benchmarks.render_cpuclasses import render_cpu_classes

DATA = {
    "candidates": {
        "tflite": {"technique": "ptq-int8", "label": "TFLite (LiteRT) `ptq-int8`"},
        "onnx": {"technique": "onnx-int8-static", "label": "ONNX Runtime `onnx-int8-static`"},
    },
    "latency": "latency: only on real hardware; emulated CPUs give no latency",
    "classes": {
        "host": {
            "label": "x86-64 host (native)",
            "facts": {
                "machine": "x86_64",
                "kfedge_isa": "x86-64-avx2-avx512-vnni",
                "vnni": True,
                "avx512f": True,
            },
            "results": {
                "tflite": {"accuracy": 0.99, "num_samples": 360, "delta_vs_host_points": 0.0},
                "onnx": {"accuracy": 0.98, "num_samples": 360, "delta_vs_host_points": 0.0},
            },
        },
        "arm64-a72": {
            "label": "arm64 Cortex-A72 (qemu)",
            "facts": {
                "machine": "aarch64",
                "kfedge_isa": "arm64",
                "cpu_part": "0xd08",
                "dotprod": False,
            },
            "results": {
                "tflite": {"accuracy": 0.985, "num_samples": 360, "delta_vs_host_points": -0.5},
                "onnx": {"error": "Traceback ...\nRuntimeError: boom"},
            },
        },
        "arm64-a76": {"label": "arm64 Cortex-A76 (qemu)", "unavailable": "no qemu"},
    },
    "userland": {"debian": "bookworm", "build_s": {"total": 30.0}, "wheels": {"numpy": "2.4.6"}},
}


def test_table_rows_cells_and_notes():
    md = render_cpu_classes(DATA)
    assert md.startswith("## 10. INT8 accuracy per CPU class") and md.endswith("\n")
    assert (
        "| CPU class | ISA | TFLite (LiteRT) `ptq-int8` | ONNX Runtime `onnx-int8-static` |" in md
    )
    assert (
        "| x86-64 host (native) | x86-64-avx2-avx512-vnni; CPUID: AVX-512, VNNI "
        "| 99.00 % | 98.00 % |" in md
    )
    assert "MIDR part 0xd08, no int8 dot product | 98.50 % (-0.50) | failed |" in md
    assert "| arm64 Cortex-A76 (qemu) | not measured | — | — |" in md
    assert "not measured (no qemu)" in md and "RuntimeError: boom" in md
    assert "Latency: only on real hardware; emulated CPUs give no latency." in md
    assert "Samples scored: 360." in md and "numpy 2.4.6" in md and "30.0 s" in md


def test_empty_data_renders():
    md = render_cpu_classes({"candidates": {}, "classes": {}})
    assert "## 10. INT8 accuracy per CPU class" in md

"""The explain benchmark's own arithmetic: the CPU line and the per-part breakdown."""

from __future__ import annotations

from edge.app.bench.explain import _parts_line, cpu_summary

EPYC_AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
XEON_VNNI = "model name\t: Intel(R) Xeon(R) Platinum 8375C\nflags\t\t: avx2 avx512f avx512bw avx512_vnni\n"


def test_cpu_summary_names_the_vector_units():
    assert cpu_summary(EPYC_AVX2) == "AMD EPYC (AVX2)"
    assert cpu_summary(XEON_VNNI) == "Intel(R) Xeon(R) Platinum 8375C (AVX2, AVX-512, AVX-512 VNNI)"
    assert cpu_summary("model name\t: old\nflags\t\t: sse2\n") == "old (no AVX2)"
    assert "(" in cpu_summary()  # this machine's own /proc/cpuinfo (or the platform's name)


def test_parts_line_splits_route_and_outside():
    p50 = {"queue": 0.1, "decode": 2.0, "preprocess": 1.5, "inference": 20.0, "heatmap": 10.0, "total": 36.0, "client": 45.0}
    line = _parts_line(p50)
    assert "inference 20.0" in line and "route other 2.4" in line and line.endswith("outside 9.0 ms")

"""`edge bench ...`: benchmarks that print figures (ratios measured in one run), not timed tests."""

from __future__ import annotations

import importlib.util

import click

# sub-command -> module with a click command named `bench`; each stage owns its benchmark
BENCHES = {
    "train": "edge.app.bench.train",
    "convert": "edge.app.bench.convert",
    "validate": "edge.app.bench.validate",
    "explain": "edge.app.bench.explain",
    "serve": "edge.app.bench.serve",
}


class _BenchGroup(click.Group):
    def list_commands(self, ctx):
        return [n for n, m in BENCHES.items() if importlib.util.find_spec(m) is not None]

    def get_command(self, ctx, name):
        if name not in BENCHES or importlib.util.find_spec(BENCHES[name]) is None:
            return None
        return importlib.import_module(BENCHES[name]).bench


@click.group(cls=_BenchGroup)
def bench() -> None:
    """Benchmarks: throughput, latency and size figures as ratios from one run."""

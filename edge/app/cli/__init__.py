"""The `edge` command: a thin layer over the library functions.

Each sub-command lives in its own module and calls one library function; errors from bad
input (``EdgeError``) become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib.util
import logging
import sys

import click

from edge.core.errors import EdgeError

# command name -> (module, attribute); imported only when used so `edge --help` stays fast
COMMANDS = {
    "data": ("edge.app.cli.data_cmd", "data"),
    "train": ("edge.app.cli.train_cmd", "train"),
    "predict": ("edge.app.cli.predict_cmd", "predict"),
    "evaluate": ("edge.app.cli.evaluate_cmd", "evaluate"),
    "calibrate": ("edge.app.cli.calibrate_cmd", "calibrate"),
    "compress": ("edge.app.cli.convert_cmd", "compress"),
    "convert": ("edge.app.cli.convert_cmd", "convert"),
    "validate": ("edge.app.cli.validate_cmd", "validate"),
    "bundle": ("edge.app.cli.bundle_cmd", "bundle"),
    "explain": ("edge.app.cli.explain_cmd", "explain"),
    "serve": ("edge.app.cli.serve_cmd", "serve"),
    "bench": ("edge.app.cli.bench_cmd", "bench"),
    "parity-vectors": ("edge.app.cli.parity_cmd", "parity_vectors"),
    "demo": ("edge.app.cli.demo_cmd", "demo"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name, (mod, _) in COMMANDS.items() if importlib.util.find_spec(mod) is not None]

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        mod, attr = COMMANDS[name]
        try:
            return getattr(importlib.import_module(mod), attr)
        except ModuleNotFoundError:
            return None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgeError as e:
            click.echo(f"error: {e.line()}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: finished outputs were kept, partial ones removed", err=True)
            sys.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="fracture-edge")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """fracture-edge: bone-fracture classifiers from Keras training to phones.

    \b
    The data flows train -> convert -> validate -> phone:
      edge data check DIR          audit a dataset before training
      edge train --data DIR        train VGG16, ResNet50 or the custom CNN -> model bundle
      edge evaluate --data DIR     metrics, ROC, calibration, subgroups
      edge compress --qat          quantization-aware fine-tuning
      edge convert --int8          phone model (.tflite with metadata)
      edge validate                phone model vs full model: the CI gate
      edge explain / edge serve    Grad-CAM, and the server the phone calls

    Where a command takes a BUNDLE, leaving it out uses the embedded default model.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")

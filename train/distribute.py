"""Training on several workers (tf.distribute.MultiWorkerMirroredStrategy): who writes what, and resume.

Every worker runs the same ``edge train`` command with its own ``TF_CONFIG``; they share the run
directory (a shared filesystem on a cluster). Only the chief (the ``chief`` task, else worker 0)
writes the run's files: CSV log, best and phase weights, ``state.json`` and the bundle. Keras'
BackupAndRestore and TensorBoard already follow that rule (a non-chief worker writes into a
temporary directory it deletes), and every worker restores from the chief's backup. When a worker
dies, the others stop with an error (TensorFlow's coordination service misses its heartbeats);
running the same command on every worker again continues from the last backed-up epoch.

Two things do not work under the strategy as written for one process:
- ``load_weights`` of an .h5 file into a distributed model fails (TensorFlow divides the h5py
  dataset, not its values, for variables aggregated on read), so weights go through a plain copy.
- ``model.predict``, ``save_weights`` and even ``get_weights`` are collectives under this strategy
  (reads of BatchNorm's moving statistics are aggregated across workers): a chief doing them alone
  fails once the other workers have left. Every worker makes a plain copy together; the chief
  saves and predicts with it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edge.core._tf import keras, tf
from edge.core.errors import EdgeError
from edge.core.fsutil import write_text

STRATEGIES = ("auto", "default", "mirrored", "multiworker")


def make_strategy(name: str) -> Any:
    """The tf.distribute strategy for ``--strategy``; ``auto`` is multi-worker when TF_CONFIG is set."""
    if name not in STRATEGIES:
        raise EdgeError(f"unknown strategy '{name}'", hint="auto, default, mirrored or multiworker")
    if name == "multiworker" or (name == "auto" and "TF_CONFIG" in os.environ):
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored" or (name == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _check_tf_config() -> None:
    """A one-line error for a missing or malformed TF_CONFIG (TensorFlow would train alone or fail deep inside)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise EdgeError(
            "--strategy multiworker needs TF_CONFIG",
            hint='set it per worker: {"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
            '"task": {"type": "worker", "index": 0}}',
        )
    try:
        conf = json.loads(raw)
        task, cluster = conf["task"], conf["cluster"]
        ok = isinstance(cluster.get("worker"), list) and 0 <= int(task["index"]) < len(cluster[task["type"]])
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise EdgeError(
            "TF_CONFIG is not a cluster description with this task in it",
            hint='expected {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": N}}',
        )


def is_chief(strategy: Any) -> bool:
    """True on the worker that writes the run's files (always, without a multi-worker strategy)."""
    return bool(strategy.extended.should_checkpoint)


def worker_count(strategy: Any) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec()
    return max(1, sum(spec.num_tasks(job) for job in spec.jobs if job in ("chief", "worker")))


def describe(strategy: Any) -> dict[str, Any]:
    """What the model card records about how the run was spread."""
    # by their public names (the multi-worker class is CollectiveAllReduceStrategy inside TensorFlow)
    public = {
        "MultiWorkerMirroredStrategy": tf.distribute.MultiWorkerMirroredStrategy,
        "MirroredStrategy": tf.distribute.MirroredStrategy,
    }
    name = next((n for n, cls in public.items() if isinstance(strategy, cls)), "default")
    return {"strategy": name, "workers": worker_count(strategy), "replicas": strategy.num_replicas_in_sync}


def barrier(strategy: Any) -> None:
    """Return on every worker only once all have reached this point (a no-op on one worker).

    After ``fit``, the chief may still be writing the best weights when another worker returns."""
    if worker_count(strategy) > 1:
        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)


def plain_copy(model: keras.Model) -> keras.Model:
    """The same graph and weights outside any strategy: predicts and saves without collectives.

    Call it outside ``strategy.scope()`` (inside, the copy's variables would be distributed again),
    and on every worker at once: reading variables aggregated on read (BatchNorm's moving
    statistics) is itself a collective under a multi-worker strategy."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def local_model(model: keras.Model, strategy: Any) -> keras.Model:
    """A model the chief alone can save and predict with: the model itself on one worker, else a plain copy."""
    return plain_copy(model) if worker_count(strategy) > 1 else model


def load_weights(model: keras.Model, path: Path) -> None:
    """``model.load_weights(path)`` for a weights .h5 file, also for a model built under a multi-worker strategy."""
    copy = plain_copy(model)
    copy.load_weights(str(path))
    model.set_weights(copy.get_weights())


def shard_by_batch(ds: Any) -> Any:
    """Each worker takes its share of every global batch.

    The training dataset comes from a generator (no files to split between workers); every worker
    builds the same batches from the same seed, so sharding by data keeps them in step."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def backed_up_epochs(backup_dir: Path) -> int:
    """Epochs a phase's BackupAndRestore backup holds, where fit() will resume (0: none).

    The chief's backup is the one every worker restores (``<backup_dir>/chief``)."""
    latest = tf.train.latest_checkpoint(str(backup_dir / "chief"))
    if latest is None:
        return 0
    names = [name for name, _ in tf.train.list_variables(latest) if name.startswith("ckpt_saved_epoch/")]
    if not names:
        raise EdgeError("backup holds no epoch counter", backup_dir, "delete the run's backup/ folder to restart the phase")
    return int(tf.train.load_variable(latest, names[0])) + 1


def keep_log_rows(csv_path: Path, rows: int) -> None:
    """Cut a CSV log back to its first ``rows`` epochs: epochs after the backup are trained again.

    The log is written before the backup at each epoch's end, so after a crash it holds every
    backed-up epoch and at most one more, which the resumed run repeats."""
    if not csv_path.exists():
        return
    lines = csv_path.read_text().splitlines(keepends=True)
    if len(lines) > rows + 1:
        write_text(csv_path, "".join(lines[: rows + 1]))


class BestWeights(keras.callbacks.Callback):
    """The weights of the best epoch so far (``monitor``, higher is better), replaced atomically.

    ModelCheckpoint writes its file in place: a worker lost while the chief writes (reading the
    weights is a collective) leaves half an .h5 that the resumed run then loads. Here every worker
    saves, as the strategy needs; the chief into a temporary file renamed onto ``path``, the others
    into a directory they delete."""

    def __init__(self, path: Path, monitor: str, best: float | None, chief: bool) -> None:
        super().__init__()
        self.path, self.monitor, self.best, self.chief = path, monitor, best, chief

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or (self.best is not None and not float(value) > self.best):
            return
        self.best = float(value)
        if not self.chief:
            with tempfile.TemporaryDirectory() as scratch:
                self.model.save_weights(str(Path(scratch) / self.path.name))
            return
        # Keras picks the format from the name (.weights.h5), so the temporary file keeps that ending
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".weights.h5", dir=self.path.parent)
        os.close(fd)
        try:
            self.model.save_weights(tmp)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

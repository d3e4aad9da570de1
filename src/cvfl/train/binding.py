"""What a checkpoint is bound to: everything that decides the training trajectory.

A checkpoint continues one trajectory only: the agreed training terms (optimiser, learning rate,
batch size, epochs, step limit, evaluation batch, seed, workers, held-out fraction, rows, the
``[privacy]`` section; the wire dtype, the pipeline's staleness and the ``[data]`` reader with
its block settings when not their defaults), this
party's model section, the order of the aligned table (its id-order fingerprint) and this
party's own training data (a digest of its features and labels). These fields, and a digest of
them, go into every checkpoint and its record; a checkpoint whose fields differ from the job's
is never resumed silently (:mod:`cvfl.train.reruns` says what to do instead).

The *shared* fields are the ones both parties must agree on; the session hello carries them
(canonical JSON) so a peer that trains with another learning rate is refused by name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cvfl.bridge.fields import Fields, Value, encode_fields
from cvfl.data.ids import id_order_fingerprint
from cvfl.data.tables import PartyTable
from cvfl.models.spec import TASK_KEYS
from cvfl.train.config import JobConfig
from cvfl.train.stream import StreamTable

BINDING_VERSION = 1


@dataclass(frozen=True)
class Binding:
    """A party's checkpoint binding: the fields both parties share, and its own."""

    shared: Fields
    own: Fields

    @property
    def fields(self) -> Fields:
        """Every field, shared and own."""
        return {**self.shared, **self.own}

    def digest(self) -> str:
        """SHA-256 (hex) of the versioned, canonical encoding of every field."""
        return fields_digest(self.fields)

    def shared_terms(self) -> bytes:
        """The shared fields as canonical JSON (what the hello carries)."""
        return encode_fields(self.shared)


def fields_digest(fields: Mapping[str, Value]) -> str:
    """The binding digest of ``fields`` (hex)."""
    body = encode_fields(dict(fields))
    return hashlib.sha256(b"cvfl/checkpoint-binding/v%d\0" % BINDING_VERSION + body).hexdigest()


def training_binding(cfg: JobConfig, table: PartyTable | StreamTable) -> Binding:
    """The binding of a party's job on its training table."""
    t = cfg.train
    shared: Fields = {
        "job_id": cfg.job.id,
        "seed": cfg.job.seed,
        "optimizer": t.optimizer,
        "lr": float(t.lr),
        "batch_size": t.batch_size,
        "epochs": t.epochs,
        "max_steps": t.max_steps,
        "eval_batch_size": t.eval_batch_size,
        "workers": t.workers,
        "holdout_fraction": float(cfg.data.holdout_fraction),
        "rows": table.rows,
        "privacy": cfg.privacy.to_wire(),  # a defence changes every gradient sent
    }
    if t.wire_dtype != "float32":  # named only when not the default: older checkpoints resume
        shared["wire_dtype"] = t.wire_dtype
    if cfg.data.reader != "memory":  # another schedule: named only when not the default
        shared["reader"] = cfg.data.reader
        shared["block_rows"] = cfg.data.block_rows
        shared["shuffle_blocks"] = cfg.data.shuffle_blocks
    if t.staleness:  # pipelined: another trajectory than the exact schedule's
        shared["staleness"] = t.staleness
    if t.early_stopping:  # both sides must stop, and export, at the same epoch
        shared["early_stopping_metric"] = t.early_stopping_metric
        shared["early_stopping_patience"] = t.early_stopping_patience
    own: Fields = {"role": cfg.role}
    for key, value in cfg.model.to_json().items():
        if key not in TASK_KEYS:
            own[f"model.{key}"] = value
    own.update(task_fields(cfg))
    if isinstance(table, StreamTable):  # one streamed pass; the same digest as in memory
        own["order_fingerprint"] = table.fingerprint.hex()
        own["data_digest"] = table.data_digest()
    else:
        own["order_fingerprint"] = id_order_fingerprint(cfg.job.id, table.ids).hex()
        own["data_digest"] = data_digest(table)
    if table.prep is not None:  # [data.columns]: the fitted state shapes the model's input
        state = json.dumps(table.prep.to_json(), sort_keys=True).encode()
        own["preprocessing"] = hashlib.sha256(b"cvfl/prep\0" + state).hexdigest()
    return Binding(shared, own)


def task_fields(cfg: JobConfig) -> Fields:
    """The leader's task settings (with the resolved class count) unless the task is binary.

    Binary adds nothing, so a binary job's binding is the one earlier versions wrote and their
    checkpoints stay resumable; the follower's half does not depend on the task.
    """
    spec = cfg.model
    if cfg.role != "leader" or spec.task == "binary":
        return {}
    fields: Fields = {"model.task": spec.task, "model.num_classes": spec.num_classes}
    if spec.task == "regression":
        fields["model.regression_loss"] = spec.regression_loss
        if spec.target_scaling != "standard":  # named only when not the default
            fields["model.target_scaling"] = spec.target_scaling
    return fields


def data_digest(table: PartyTable) -> str:
    """SHA-256 (hex) of this party's training data: feature names, features and labels."""
    h = hashlib.sha256(b"cvfl/training-data/v1\0")
    h.update(json.dumps(list(table.feature_names)).encode())
    for array in (table.features, table.labels):
        if array is None:
            h.update(b"none\0")
            continue
        plain = np.ascontiguousarray(array)
        h.update(f"{plain.dtype.str}{list(plain.shape)}\0".encode())
        h.update(plain.data)
    return h.hexdigest()

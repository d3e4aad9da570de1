"""A practitioner's mixed tables: split equals centralized, and predict reapplies the state."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from cvfl.bridge.security import PlaintextSecurity
from cvfl.data import load_arrow, write_arrow
from cvfl.data.tables import PartyTable
from cvfl.errors import DataError
from cvfl.models.export import load_half
from cvfl.models.nets import CombinedModel
from cvfl.psi.config import PsiConfig
from cvfl.serve import (
    SCORE_COLUMN,
    PredictResult,
    prepare_predict,
    read_scores,
)
from cvfl.train import TrainResult, load_party, train_centralized
from cvfl.train.config import JobConfig, job_from_mapping
from cvfl.train.party import features
from tests.conftest import job_tables, keys_of
from tests.data.mixed import mixed_tables, mlp_overrides
from tests.serve.helpers import predict_both, section
from tests.train.helpers import run_pair


def _jobs(tmp: Path, **extra: Any) -> tuple[JobConfig, JobConfig]:
    paths = mixed_tables(tmp)
    cfgs = []
    for role, path in zip(("leader", "follower"), paths, strict=True):
        raw = job_tables(tmp, path, role, **mlp_overrides(role), **extra)
        cfgs.append(job_from_mapping(raw, tmp / "job.toml"))
    return cfgs[0], cfgs[1]


@pytest.fixture
def trained(tmp_path: Path) -> tuple[JobConfig, JobConfig, TrainResult, TrainResult]:
    lead_cfg, follow_cfg = _jobs(tmp_path, train__lr=0.05)
    lead, follow = run_pair(lead_cfg, follow_cfg)
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    return lead_cfg, follow_cfg, lead, follow


def test_split_equals_centralized_on_mixed_tables(
    trained: tuple[JobConfig, JobConfig, TrainResult, TrainResult],
) -> None:
    lead_cfg, follow_cfg, lead, follow = trained
    leader, follower = load_party(lead_cfg), load_party(follow_cfg)
    assert isinstance(leader.table, PartyTable) and isinstance(follower.table, PartyTable)
    assert leader.table.prep is not None and follower.table.prep is not None
    assert leader.table.prep.layout.cardinalities == (4, 17)  # 3 colours + OOV; 16 buckets + 0
    assert not np.isnan(leader.table.features).any()
    combined, central = train_centralized(leader, follower)
    assert central.steps == lead.steps == follow.steps > 0
    assert lead.export is not None and follow.export is not None
    split_leader = load_half(lead.export, keys_of(lead_cfg))
    split_follower = load_half(follow.export, keys_of(follow_cfg))
    for name, value in combined.leader.state_dict().items():
        torch.testing.assert_close(split_leader.tensors[name], value, atol=1e-5, rtol=0)
    for name, value in combined.follower.state_dict().items():
        torch.testing.assert_close(split_follower.tensors[name], value, atol=1e-5, rtol=0)
    # The export carries the fitted state, as plain JSON, equal to the one trained with.
    assert split_leader.spec["preprocessing"] == leader.table.prep.to_json()
    assert json.loads(json.dumps(split_follower.spec["preprocessing"])) == (
        follower.table.prep.to_json()
    )
    # A checkpoint is bound to the fitted state too (another state: another model input).
    assert len(str(leader.binding.own["preprocessing"])) == 64
    untouched = load_party(lead_cfg).model.state_dict()
    assert any(not torch.equal(untouched[k], v) for k, v in split_leader.tensors.items())


def _predict(
    lead: JobConfig, follow: JobConfig, tmp: Path, inputs: tuple[Path, Path]
) -> PredictResult | BaseException:
    leader, follower = predict_both(
        lead, follow, tmp, leader={"input": inputs[0]}, follower={"input": inputs[1]}
    )
    assert isinstance(follower, PredictResult), follower
    return leader


def test_predict_applies_the_stored_state(
    trained: tuple[JobConfig, JobConfig, TrainResult, TrainResult], tmp_path: Path
) -> None:
    lead_cfg, follow_cfg, _, _ = trained
    port = {"peer": {"port_file": tmp_path / "predict.port"}}
    lead_cfg = _with_port(lead_cfg, port["peer"]["port_file"])
    follow_cfg = _with_port(follow_cfg, port["peer"]["port_file"])
    # Scoring rows with a colour and a region never seen in training, and missing cells.
    leader_in, follower_in = _scoring_tables(lead_cfg, follow_cfg, tmp_path)
    result = _predict(lead_cfg, follow_cfg, tmp_path, (leader_in, follower_in))
    assert isinstance(result, PredictResult), result
    assert result.output is not None
    scores = read_scores(Path(result.output), keys_of(lead_cfg))

    leader, follower = load_party(lead_cfg), load_party(follow_cfg)
    leader.model.load_state_dict(load_half(_export(lead_cfg), keys_of(lead_cfg)).tensors)
    follower.model.load_state_dict(load_half(_export(follow_cfg), keys_of(follow_cfg)).tensors)
    assert isinstance(leader.table, PartyTable) and isinstance(follower.table, PartyTable)
    assert leader.table.prep is not None and follower.table.prep is not None
    lx = leader.table.prep.transform(load_arrow(leader_in))
    fx = follower.table.prep.transform(load_arrow(follower_in))
    assert lx[0, leader.table.feature_names.index("color")] == 0  # unseen: the OOV bucket
    assert not np.isnan(lx).any() and not np.isnan(fx).any()
    leader.model.eval()
    follower.model.eval()
    with torch.no_grad():
        logits = CombinedModel(follower.model, leader.model)(
            torch.from_numpy(lx), torch.from_numpy(fx)
        )
    expected = torch.softmax(logits, dim=1)[:, 1].numpy()
    np.testing.assert_allclose(scores.column(SCORE_COLUMN).to_numpy(), expected, atol=1e-5)
    # The same rows through the in-memory model of training (features(table, rows)).
    rows = np.arange(2, 20)  # rows 0 and 1 were changed above
    with torch.no_grad():
        trained_logits = CombinedModel(follower.model, leader.model)(
            features(leader.table, rows), features(follower.table, rows)
        )
    torch.testing.assert_close(logits[2:20], trained_logits, atol=1e-5, rtol=0)


def test_predict_refuses_a_missing_declared_column_before_the_peer(
    trained: tuple[JobConfig, JobConfig, TrainResult, TrainResult], tmp_path: Path
) -> None:
    lead_cfg, _, _, _ = trained
    table = load_arrow(lead_cfg.data.path).drop_columns(["color"])
    data = tmp_path / "no-color.csv"
    write_arrow(table, data)
    # With [psi], scoring aligns with the peer first; no follower runs here, and the refusal
    # comes before any alignment or connection is tried.
    psi = PsiConfig(output=tmp_path / "aligned.parquet", plaintext_output=True)
    lead_cfg = dataclasses.replace(lead_cfg, psi=psi)
    with pytest.raises(DataError) as info:
        prepare_predict(lead_cfg, section(lead_cfg, tmp_path, input=data), PlaintextSecurity())
    assert info.value.code == "data.missing_column"
    assert str(data) in info.value.message and "'color'" in info.value.message


def _with_port(cfg: JobConfig, port_file: Path) -> JobConfig:
    return dataclasses.replace(cfg, peer=dataclasses.replace(cfg.peer, port_file=port_file))


def _export(cfg: JobConfig) -> Path:
    return cfg.job.workdir / "export" / f"{cfg.role}.safetensors.sealed"


def _scoring_tables(lead: JobConfig, follow: JobConfig, tmp: Path) -> tuple[Path, Path]:
    leader = load_arrow(lead.data.path)
    follower = load_arrow(follow.data.path)
    colors = leader.column("color").to_pylist()
    colors[0] = "ultraviolet"
    incomes = leader.column("income").to_pylist()
    incomes[1] = None
    regions = follower.column("region").to_pylist()
    regions[0] = "atlantis"
    leader = leader.set_column(1, "color", pa.array(colors, pa.string()))
    leader = leader.set_column(2, "income", pa.array(incomes, pa.float64()))
    follower = follower.set_column(1, "region", pa.array(regions, pa.string()))
    paths = tmp / "score-leader.csv", tmp / "score-follower.csv"
    write_arrow(leader, paths[0])
    write_arrow(follower, paths[1])
    return paths

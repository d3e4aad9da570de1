"""The job-file tables shared by the demo, breast-cancer and practice jobs parse as meant."""

from __future__ import annotations

import tomllib

import pytest

from cvfl.datasets.jobfile import adam_lines, mlp_tables, peer_table, trust_tables


@pytest.mark.parametrize(("role", "verb"), [("leader", "listen"), ("follower", "connect")])
def test_peer_table_listens_or_connects(role: str, verb: str) -> None:
    peer = tomllib.loads(peer_table(role, 4567))["peer"]
    assert peer == {verb: "127.0.0.1:4567", "security": "ratls", "connect_timeout": 120.0}


def test_model_and_train_tables() -> None:
    parsed = tomllib.loads(
        mlp_tables(8, 16, 'task = "multiclass"\nnum_classes = 3') + adam_lines(0.003, 32, 10)
    )
    assert parsed["model"] == {
        "kind": "mlp",
        "task": "multiclass",
        "num_classes": 3,
        "cut_width": 8,
        "leader_hidden": [16],
        "follower_hidden": [16],
    }
    assert parsed["train"] == {"optimizer": "adam", "lr": 0.003, "batch_size": 32, "epochs": 10}
    assert "task" not in tomllib.loads(mlp_tables(8, 16))["model"]


@pytest.mark.parametrize("notes", [True, False])
def test_trust_tables_are_the_same_with_or_without_notes(notes: bool) -> None:
    text = trust_tables("follower", "same_as_self = true", notes=notes)
    assert text.startswith("\n[sealing]\n")
    assert ("# Checkpoints and exports are sealed" in text) is notes
    parsed = tomllib.loads(text)
    assert parsed["sealing"] == {"provider": "file", "key_file": "keys/follower.key"}
    assert parsed["attestation"] == {
        "provider": "simulated",
        "policy": {"allow_simulated": True, "identities": [{"same_as_self": True}]},
    }

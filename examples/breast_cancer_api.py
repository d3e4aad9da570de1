"""Train the breast-cancer split from Python: both parties in this process, then the AUC.

Run: python examples/breast_cancer_api.py [FOLDER]   (default: a temporary folder)
"""

import sys
import tempfile
from pathlib import Path

from cvfl import api
from cvfl.cli.parties import free_port
from cvfl.datasets.jobs import prepare_breast_cancer


def main(folder: Path) -> None:
    """Write the two tables and job files, train both parties and print the held-out AUC."""
    prepare_breast_cancer(folder, free_port())  # tables, sealing keys, leader/follower.toml
    result = api.run_local(folder / "leader.toml", folder / "follower.toml")
    assert result.leader.metrics is not None
    print(f"steps: {result.leader.steps}, fingerprint: {result.leader.fingerprint}")
    print(f"held-out auc: {result.leader.metrics.auc!r}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))

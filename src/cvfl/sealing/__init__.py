"""Sealed storage: encrypted, tamper-evident files for checkpoints, models and aligned data.

See docs/sealing.md for the file format. Typical use::

    keys = key_provider_from_config(SealingConfig.from_toml_table(job["sealing"]))
    write_sealed(path, data, purpose="checkpoint", keys=keys)
    data = read_sealed(path, purpose="checkpoint", keys=keys)
"""

from cvfl.sealing.artifacts import Artifacts, read_artifact
from cvfl.sealing.config import SealingConfig, key_provider_from_config
from cvfl.sealing.files import (
    is_sealed,
    read_header_of,
    read_sealed,
    reseal,
    seal_file,
    sealed_reader,
    sealed_writer,
    unseal_file,
    write_sealed,
)
from cvfl.sealing.format import DEFAULT_CHUNK_SIZE, SealedHeader
from cvfl.sealing.keys import (
    EnvKeyProvider,
    FileKeyProvider,
    GramineKeyProvider,
    KeyProvider,
    new_key_file,
)
from cvfl.sealing.reader import SealedReader
from cvfl.sealing.stream import SealedWriter

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Artifacts",
    "EnvKeyProvider",
    "FileKeyProvider",
    "GramineKeyProvider",
    "KeyProvider",
    "SealedHeader",
    "SealedReader",
    "SealedWriter",
    "SealingConfig",
    "is_sealed",
    "key_provider_from_config",
    "new_key_file",
    "read_artifact",
    "read_header_of",
    "read_sealed",
    "reseal",
    "seal_file",
    "sealed_reader",
    "sealed_writer",
    "unseal_file",
    "write_sealed",
]

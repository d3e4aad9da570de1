"""Party tables: synthetic generation, reading with validation, and id fingerprints."""

from cvfl.data.ids import batch_mac, id_order_fingerprint, macs_equal, session_mac_key
from cvfl.data.synth import ID_COLUMN, LABEL_COLUMN, SynthSpec, SynthTables, synthesize
from cvfl.data.tables import (
    FeatureKind,
    PartyTable,
    TableSchema,
    load_arrow,
    read_party_table,
    validate,
    write_arrow,
)

__all__ = [
    "ID_COLUMN",
    "LABEL_COLUMN",
    "FeatureKind",
    "PartyTable",
    "SynthSpec",
    "SynthTables",
    "TableSchema",
    "batch_mac",
    "id_order_fingerprint",
    "load_arrow",
    "macs_equal",
    "read_party_table",
    "session_mac_key",
    "synthesize",
    "validate",
    "write_arrow",
]

from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Phase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PHASE_UNSPECIFIED: _ClassVar[Phase]
    PHASE_TRAIN: _ClassVar[Phase]
    PHASE_EVAL: _ClassVar[Phase]
    PHASE_PREDICT: _ClassVar[Phase]
PHASE_UNSPECIFIED: Phase
PHASE_TRAIN: Phase
PHASE_EVAL: Phase
PHASE_PREDICT: Phase

class Tensor(_message.Message):
    __slots__ = ("name", "dtype", "shape", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class TensorSpec(_message.Message):
    __slots__ = ("name", "dtype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("protocol_version", "job_id", "role", "cut_layer", "batch_size", "seed", "id_order_fingerprint", "last_committed_step", "nonce", "num_rows", "schedule_digest", "software_version", "checkpoints", "workers", "worker", "terms", "training_terms", "privacy")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CUT_LAYER_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ID_ORDER_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMITTED_STEP_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_TERMS_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    job_id: str
    role: str
    cut_layer: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    batch_size: int
    seed: int
    id_order_fingerprint: bytes
    last_committed_step: int
    nonce: bytes
    num_rows: int
    schedule_digest: bytes
    software_version: str
    checkpoints: _containers.RepeatedCompositeFieldContainer[CheckpointState]
    workers: int
    worker: int
    terms: bytes
    training_terms: bytes
    privacy: str
    def __init__(self, protocol_version: _Optional[int] = ..., job_id: _Optional[str] = ..., role: _Optional[str] = ..., cut_layer: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., batch_size: _Optional[int] = ..., seed: _Optional[int] = ..., id_order_fingerprint: _Optional[bytes] = ..., last_committed_step: _Optional[int] = ..., nonce: _Optional[bytes] = ..., num_rows: _Optional[int] = ..., schedule_digest: _Optional[bytes] = ..., software_version: _Optional[str] = ..., checkpoints: _Optional[_Iterable[_Union[CheckpointState, _Mapping]]] = ..., workers: _Optional[int] = ..., worker: _Optional[int] = ..., terms: _Optional[bytes] = ..., training_terms: _Optional[bytes] = ..., privacy: _Optional[str] = ...) -> None: ...

class CheckpointState(_message.Message):
    __slots__ = ("step", "digest", "peer_digest")
    STEP_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PEER_DIGEST_FIELD_NUMBER: _ClassVar[int]
    step: int
    digest: bytes
    peer_digest: bytes
    def __init__(self, step: _Optional[int] = ..., digest: _Optional[bytes] = ..., peer_digest: _Optional[bytes] = ...) -> None: ...

class Assign(_message.Message):
    __slots__ = ("step", "rows")
    STEP_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    step: int
    rows: bytes
    def __init__(self, step: _Optional[int] = ..., rows: _Optional[bytes] = ...) -> None: ...

class Forward(_message.Message):
    __slots__ = ("step", "phase", "ids_mac", "tensors")
    STEP_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    IDS_MAC_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    step: int
    phase: Phase
    ids_mac: bytes
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, step: _Optional[int] = ..., phase: _Optional[_Union[Phase, str]] = ..., ids_mac: _Optional[bytes] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class Backward(_message.Message):
    __slots__ = ("step", "ids_mac", "tensors", "checkpoint")
    STEP_FIELD_NUMBER: _ClassVar[int]
    IDS_MAC_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    step: int
    ids_mac: bytes
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    checkpoint: bool
    def __init__(self, step: _Optional[int] = ..., ids_mac: _Optional[bytes] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., checkpoint: _Optional[bool] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Resume(_message.Message):
    __slots__ = ("session_id", "received")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    received: int
    def __init__(self, session_id: _Optional[bytes] = ..., received: _Optional[int] = ...) -> None: ...

class CheckpointDone(_message.Message):
    __slots__ = ("step", "digest")
    STEP_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    step: int
    digest: bytes
    def __init__(self, step: _Optional[int] = ..., digest: _Optional[bytes] = ...) -> None: ...

class Finish(_message.Message):
    __slots__ = ("steps",)
    STEPS_FIELD_NUMBER: _ClassVar[int]
    steps: int
    def __init__(self, steps: _Optional[int] = ...) -> None: ...

class EpochDecision(_message.Message):
    __slots__ = ("step", "best_step", "stop")
    STEP_FIELD_NUMBER: _ClassVar[int]
    BEST_STEP_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    step: int
    best_step: int
    stop: bool
    def __init__(self, step: _Optional[int] = ..., best_step: _Optional[int] = ..., stop: _Optional[bool] = ...) -> None: ...

class Abort(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class PredictHello(_message.Message):
    __slots__ = ("protocol_version", "job_id", "role", "export_format", "software_version", "model_fingerprint", "trained_steps", "cut_layer", "batch_size", "num_rows", "id_order_fingerprint", "nonce", "expected_peer_fingerprint", "terms")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EXPORT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    TRAINED_STEPS_FIELD_NUMBER: _ClassVar[int]
    CUT_LAYER_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    ID_ORDER_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_PEER_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    job_id: str
    role: str
    export_format: str
    software_version: str
    model_fingerprint: str
    trained_steps: int
    cut_layer: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    batch_size: int
    num_rows: int
    id_order_fingerprint: bytes
    nonce: bytes
    expected_peer_fingerprint: str
    terms: bytes
    def __init__(self, protocol_version: _Optional[int] = ..., job_id: _Optional[str] = ..., role: _Optional[str] = ..., export_format: _Optional[str] = ..., software_version: _Optional[str] = ..., model_fingerprint: _Optional[str] = ..., trained_steps: _Optional[int] = ..., cut_layer: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., batch_size: _Optional[int] = ..., num_rows: _Optional[int] = ..., id_order_fingerprint: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., expected_peer_fingerprint: _Optional[str] = ..., terms: _Optional[bytes] = ...) -> None: ...

class Lookup(_message.Message):
    __slots__ = ("batch", "ids")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    batch: int
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, batch: _Optional[int] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Activations(_message.Message):
    __slots__ = ("batch", "present", "tensors")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    batch: int
    present: bytes
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, batch: _Optional[int] = ..., present: _Optional[bytes] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("seq", "ack", "hello", "forward", "backward", "finish", "abort", "predict_hello", "heartbeat", "resume", "checkpoint_done", "assign", "epoch_decision", "lookup", "activations")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    FORWARD_FIELD_NUMBER: _ClassVar[int]
    BACKWARD_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    PREDICT_HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_DONE_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_FIELD_NUMBER: _ClassVar[int]
    EPOCH_DECISION_FIELD_NUMBER: _ClassVar[int]
    LOOKUP_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    ack: int
    hello: Hello
    forward: Forward
    backward: Backward
    finish: Finish
    abort: Abort
    predict_hello: PredictHello
    heartbeat: Heartbeat
    resume: Resume
    checkpoint_done: CheckpointDone
    assign: Assign
    epoch_decision: EpochDecision
    lookup: Lookup
    activations: Activations
    def __init__(self, seq: _Optional[int] = ..., ack: _Optional[int] = ..., hello: _Optional[_Union[Hello, _Mapping]] = ..., forward: _Optional[_Union[Forward, _Mapping]] = ..., backward: _Optional[_Union[Backward, _Mapping]] = ..., finish: _Optional[_Union[Finish, _Mapping]] = ..., abort: _Optional[_Union[Abort, _Mapping]] = ..., predict_hello: _Optional[_Union[PredictHello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., resume: _Optional[_Union[Resume, _Mapping]] = ..., checkpoint_done: _Optional[_Union[CheckpointDone, _Mapping]] = ..., assign: _Optional[_Union[Assign, _Mapping]] = ..., epoch_decision: _Optional[_Union[EpochDecision, _Mapping]] = ..., lookup: _Optional[_Union[Lookup, _Mapping]] = ..., activations: _Optional[_Union[Activations, _Mapping]] = ...) -> None: ...

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EnrolRequest(_message.Message):
    __slots__ = ("protocol_version", "job_id", "role", "rank", "world_size", "proof")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    job_id: str
    role: str
    rank: int
    world_size: int
    proof: bytes
    def __init__(self, protocol_version: _Optional[int] = ..., job_id: _Optional[str] = ..., role: _Optional[str] = ..., rank: _Optional[int] = ..., world_size: _Optional[int] = ..., proof: _Optional[bytes] = ...) -> None: ...

class EnrolResponse(_message.Message):
    __slots__ = ("group_key", "peer_description")
    GROUP_KEY_FIELD_NUMBER: _ClassVar[int]
    PEER_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    group_key: bytes
    peer_description: str
    def __init__(self, group_key: _Optional[bytes] = ..., peer_description: _Optional[str] = ...) -> None: ...

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class AttestRequest(_message.Message):
    __slots__ = ("protocol_version", "certificate_der", "possession_signature")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    POSSESSION_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    certificate_der: bytes
    possession_signature: bytes
    def __init__(self, protocol_version: _Optional[int] = ..., certificate_der: _Optional[bytes] = ..., possession_signature: _Optional[bytes] = ...) -> None: ...

class AttestResponse(_message.Message):
    __slots__ = ("peer_description", "pin_ttl_seconds")
    PEER_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PIN_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    peer_description: str
    pin_ttl_seconds: int
    def __init__(self, peer_description: _Optional[str] = ..., pin_ttl_seconds: _Optional[int] = ...) -> None: ...

class ConfirmRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConfirmResponse(_message.Message):
    __slots__ = ("peer_description",)
    PEER_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    peer_description: str
    def __init__(self, peer_description: _Optional[str] = ...) -> None: ...

class RefusalReport(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class RefusalAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

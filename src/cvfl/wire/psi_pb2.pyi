from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PsiHello(_message.Message):
    __slots__ = ("version", "job_id", "role", "count", "mode", "batch_size", "group", "terms", "nonce", "resume")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    version: int
    job_id: str
    role: str
    count: int
    mode: str
    batch_size: int
    group: str
    terms: bytes
    nonce: bytes
    resume: PsiResume
    def __init__(self, version: _Optional[int] = ..., job_id: _Optional[str] = ..., role: _Optional[str] = ..., count: _Optional[int] = ..., mode: _Optional[str] = ..., batch_size: _Optional[int] = ..., group: _Optional[str] = ..., terms: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., resume: _Optional[_Union[PsiResume, _Mapping]] = ...) -> None: ...

class PsiResume(_message.Message):
    __slots__ = ("session", "own_answered", "peer_answered")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    OWN_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    PEER_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    session: bytes
    own_answered: int
    peer_answered: int
    def __init__(self, session: _Optional[bytes] = ..., own_answered: _Optional[int] = ..., peer_answered: _Optional[int] = ...) -> None: ...

class PsiBatch(_message.Message):
    __slots__ = ("index", "points")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    index: int
    points: bytes
    def __init__(self, index: _Optional[int] = ..., points: _Optional[bytes] = ...) -> None: ...

class PsiReturn(_message.Message):
    __slots__ = ("index", "points")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    index: int
    points: bytes
    def __init__(self, index: _Optional[int] = ..., points: _Optional[bytes] = ...) -> None: ...

class PsiDone(_message.Message):
    __slots__ = ("sent", "returned")
    SENT_FIELD_NUMBER: _ClassVar[int]
    RETURNED_FIELD_NUMBER: _ClassVar[int]
    sent: int
    returned: int
    def __init__(self, sent: _Optional[int] = ..., returned: _Optional[int] = ...) -> None: ...

class PsiKeyShare(_message.Message):
    __slots__ = ("public_key", "certificate", "signature")
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    public_key: bytes
    certificate: bytes
    signature: bytes
    def __init__(self, public_key: _Optional[bytes] = ..., certificate: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class PsiAnnounce(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class PsiAbort(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class PsiFrame(_message.Message):
    __slots__ = ("hello", "batch", "ret", "done", "abort", "key", "announce")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    RET_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCE_FIELD_NUMBER: _ClassVar[int]
    hello: PsiHello
    batch: PsiBatch
    ret: PsiReturn
    done: PsiDone
    abort: PsiAbort
    key: PsiKeyShare
    announce: PsiAnnounce
    def __init__(self, hello: _Optional[_Union[PsiHello, _Mapping]] = ..., batch: _Optional[_Union[PsiBatch, _Mapping]] = ..., ret: _Optional[_Union[PsiReturn, _Mapping]] = ..., done: _Optional[_Union[PsiDone, _Mapping]] = ..., abort: _Optional[_Union[PsiAbort, _Mapping]] = ..., key: _Optional[_Union[PsiKeyShare, _Mapping]] = ..., announce: _Optional[_Union[PsiAnnounce, _Mapping]] = ...) -> None: ...

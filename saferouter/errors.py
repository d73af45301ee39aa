"""SafeRouter's one exception tree, and how each branch is rendered for a client.

``except SafeRouterError`` catches every error SafeRouter raises on purpose, and nothing
else (tests/unit/test_errors.py imports every module and holds each exception class to
this tree and to this drawing). Classes marked ``[module]`` specialise a branch next to
the code that raises them; everything else is defined here. This module imports nothing
of SafeRouter's, so the pure cores can raise from it.

    SafeRouterError
    ├── ParseError              bytes that are not what a parser expects (SSE, TOML, reports)
    │   ├── ReportFormatError   [tee.abi] not a well-formed ATTESTATION_REPORT
    │   └── ExtensionError      [tee.kds] a VCEK/VLEK extension missing or malformed
    ├── ConfigError             a catalog or setting that cannot be used
    │   └── DataDirInUse        another ``saferouter serve`` holds the data dir's lock
    ├── VerificationError       cryptographic evidence that does not hold (reports, logs)
    │   ├── ProofError          [translog.merkle] an inclusion / consistency proof
    │   ├── NoteError           [translog.note] a signed note or checkpoint
    │   ├── ReceiptError        [translog.receipt] a receipt's signature or response hash
    │   ├── ReportVerificationError [tee.verify] an SNP report; ``.step`` names which of
    │   │                           the eleven steps failed (one subclass per step)
    │   ├── TLSKeyMismatch      [verify.channel] a server's TLS key is not the attested one
    │   └── DestinationError    [byok.destination] a provider key would go somewhere unmeasured
    │                           or in the clear
    ├── PolicyError             an authentic SNP report that does not meet the policy
    ├── FetchError              a certificate not to be had from AMD KDS or the cache
    ├── DeviceError             the SEV-SNP guest device refused or failed a request
    ├── SealError               a sealed blob that cannot be opened here
    │   └── SealedKeyError      [byok.sealing] a sealed provider key that does not open
    ├── CheckFailed             [verify.evidence] a gateway or receipt failed a verifier step
    ├── _HTTP2Refused           [http_worker] an HTTP/2 preface to a server with it off
    ├── StorageError            the store failed (rendered as a 500 with the request id)
    │   ├── StorageUnavailable  the database cannot be reached → 503 storage_unavailable
    │   ├── _Conflict           [storage.postgres] a write batch lost a serialization
    │   │                       conflict: run again (never leaves the store)
    │   ├── LastAdminKey        the store refused to revoke the last active admin key
    │   ├── KeyNotActive        the store refused a BYOK key for a revoked or unknown key
    │   └── KeyFileError        a key file of the data dir that does not read as its key
    └── ApiError                an error the API renders as an OpenAI error body: carries
        │                       status, ``type``, ``code``, ``param`` and headers
        ├── InvalidRequest      400 invalid_request_error
        ├── AuthenticationFailed 401 invalid_api_key
        ├── InsufficientQuota   402 insufficient_quota (the key's credits)
        ├── PermissionDenied    403
        ├── NotFound            404
        │   └── ModelNotFound   404 model_not_found
        ├── MethodNotAllowed    405
        ├── Conflict            409 (a resource in a state that refuses the request)
        ├── PayloadTooLarge     413
        ├── RateLimited         429 (the key's own requests/tokens per minute)
        ├── InternalError       500 internal_error (see :func:`internal_error`)
        ├── ServiceUnavailable  503 storage_unavailable (the store's StorageUnavailable)
        └── UpstreamError       the provider failed; status 4xx passed on, or 502/503/504
            ├── UpstreamRejected   the provider answered 4xx; its status and message go back
            ├── ByokKeyRejected    the provider refused the client's own key → 403
            ├── UpstreamBadGateway 5xx or a malformed answer → 502
            ├── UpstreamUnavailable connect failure, circuit open → 503
            ├── UpstreamRateLimited the provider asked to wait (Retry-After) → 429
            └── UpstreamTimeout    connect / first-byte / idle timeout → 504

Every error a client sees is ``{"error": {"message", "type", "param", "code"}}``
(:func:`encode_error_body`), never HTML and never a traceback: an :class:`ApiError` as it
is, anything else through :func:`unexpected_error`. Messages never carry upstream keys or
prompt text.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import ClassVar

log = logging.getLogger("saferouter")
# how long a client is told to wait when the database is unreachable
STORAGE_RETRY_AFTER_S = 1


class SafeRouterError(Exception):
    """Root of every exception SafeRouter raises on purpose."""


class ParseError(SafeRouterError):
    """Input bytes are not of the expected form."""


class ConfigError(SafeRouterError):
    """A catalog or setting that cannot be used."""


class DataDirInUse(ConfigError):
    """Another ``saferouter serve`` (or a worker of one) holds the data dir's lock."""


class VerificationError(SafeRouterError):
    """Signatures, proofs or reports that do not verify."""


class PolicyError(SafeRouterError):
    """An authentic report does not meet the policy; ``field`` names what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class FetchError(SafeRouterError):
    """A certificate could not be had from KDS or the cache."""


class DeviceError(SafeRouterError):
    """The guest device refused or failed a request."""


class SealError(SafeRouterError):
    """A sealed blob cannot be opened here."""


class StorageError(SafeRouterError):
    """The store could not do what was asked."""


class StorageUnavailable(StorageError):
    """The database cannot be reached: connection refused or lost, no pooled connection
    within the pool's timeout, a statement past its timeout. Not a bug but an outage the
    client can wait out: rendered as 503 ``storage_unavailable`` with ``Retry-After``
    (:func:`internal_error`), logged without a traceback."""


class LastAdminKey(StorageError):
    """Revoking this key would leave no active admin key. A store error (not a client
    error) because the store raises it inside its write transaction, where only store
    errors roll one operation back; the route maps it to 409 ``last_admin_key``."""


class KeyNotActive(StorageError):
    """A BYOK key for a key that is revoked (or gone): refused inside the write
    transaction, so a revocation racing an upload cannot leave a revoked key's provider
    secret behind. The route maps it to 401 ``revoked_api_key``."""


class KeyFileError(StorageError):
    """A key file of the data dir (identity, TLS, BYOK) that does not read as its key:
    damaged, or sealed by another build or machine. The start stops, naming the file:
    the key is never replaced, since logs, certificates and users' sealed provider keys
    hang on it."""


class ApiError(SafeRouterError):
    """An error the API renders as an OpenAI error body: its HTTP ``status`` and
    ``headers``, and the body's ``type``, ``code`` and ``param``."""

    status: ClassVar[int] = 400
    error_type: ClassVar[str] = "invalid_request_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.headers = headers or {}
        if status is not None:
            self.status = status  # type: ignore[misc]  # instance override of the class default

    def body(self) -> bytes:
        """The OpenAI-shaped body of this error, as JSON bytes."""
        return encode_error_body(
            self.message, error_type=self.error_type, code=self.code, param=self.param
        )


class InvalidRequest(ApiError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(ApiError):
    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class InsufficientQuota(ApiError):
    status = 402
    error_type = "insufficient_quota"
    default_code = "insufficient_quota"


class RateLimited(ApiError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class PermissionDenied(ApiError):
    status = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFound(ApiError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class MethodNotAllowed(ApiError):
    status = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class Conflict(ApiError):
    status = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class InternalError(ApiError):
    status = 500
    error_type = "server_error"
    default_code = "internal_error"


class ServiceUnavailable(ApiError):
    """503: the gateway cannot serve now (its database is unreachable); ask again soon."""

    status = 503
    error_type = "server_error"
    default_code = "storage_unavailable"


class UpstreamError(ApiError):
    status = 502
    error_type = "upstream_error"


class UpstreamRejected(UpstreamError):
    """The provider answered with a 4xx; status and message are passed on."""

    error_type = "invalid_request_error"


class ByokKeyRejected(UpstreamError):
    """The provider refused the client's own provider key (401/402/403): the client's
    to fix, so it is told which key, unlike a refusal of the operator's key (a 502)."""

    status = 403
    error_type = "permission_error"
    default_code = "byok_key_rejected"


class UpstreamBadGateway(UpstreamError):
    status = 502
    default_code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    status = 503
    default_code = "upstream_unavailable"


class UpstreamRateLimited(UpstreamError):
    """A provider's 429 ``Retry-After`` has not elapsed: the gateway does not ask again."""

    status = 429
    error_type = "rate_limit_error"
    default_code = "upstream_rate_limited"


class UpstreamTimeout(UpstreamError):
    status = 504
    default_code = "upstream_timeout"


def internal_error(error: BaseException, request_id: str) -> ApiError:
    """The error a client gets for ``error``, an exception no route turned into an
    :class:`ApiError`: a 503 with ``Retry-After`` while the database is unreachable (an
    outage, not a bug), else a 500. The 500 says whether the store failed (the
    operator's first question) and quotes the request id; neither quotes the error's own
    text: that may quote request data or name tables, files and hosts."""
    if isinstance(error, StorageUnavailable):
        return ServiceUnavailable(
            "The gateway cannot reach its database right now. Retry shortly; quote "
            f"request id {request_id} if it persists.",
            headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)},
        )
    kind = "a storage" if isinstance(error, StorageError) else "an internal"
    return InternalError(
        f"The server had {kind} error while processing your request. "
        f"Quote request id {request_id} when reporting it."
    )


def encode_error_body(
    message: str,
    *,
    error_type: str,
    code: str | None = None,
    param: str | None = None,
) -> bytes:
    """The OpenAI error object as JSON bytes."""
    return json.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}},
        ensure_ascii=False,
    ).encode()


def unexpected_error(error: BaseException, *, method: str, path: str, request_id: str) -> ApiError:
    """Log an error no code expected and return the error its client gets
    (:func:`internal_error`). The message of such an error may quote request data: the
    log has its type and where it happened, never its text; the client gets the request
    id to quote. An unreachable database is an outage, not a bug: one line, no frames."""
    if isinstance(error, StorageUnavailable):
        log.warning("database unreachable in %s %s (request %s): 503", method, path, request_id)
        return internal_error(error, request_id)
    frames = "".join(traceback.format_tb(error.__traceback__))
    log.error(
        "unexpected %s in %s %s (request %s)\n%s",
        type(error).__name__,
        method,
        path,
        request_id,
        frames,
    )
    return internal_error(error, request_id)

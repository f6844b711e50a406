"""The service's errors: each names its HTTP status and a stable `kind`, so an answer's
error is the same wherever it is given (the HTTP app's one handler table, a batch job's
line, a Ray replica's reply). Knows nothing of any web framework.
"""

from __future__ import annotations

from media import DecodeFailed, NotAVideo, TooCostly, VideoError, VideoTooLarge

from .batcher import BatchError, QueueFull, QueueTimeout


class ServiceError(Exception):
    status = 500
    kind = "internal"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def __reduce__(self):  # keeps the headers when the error crosses processes (Ray)
        return type(self), (self.message, self.headers)


class BadRequest(ServiceError):
    status, kind = 422, "bad_request"


class NotFound(ServiceError):
    status, kind = 404, "not_found"


class Conflict(ServiceError):
    status, kind = 409, "conflict"


class ModelConflict(ServiceError):
    status, kind = 409, "model_mismatch"


class RequestTimeout(ServiceError):
    status, kind = 408, "request_timeout"


class PayloadTooLarge(ServiceError):
    status, kind = 413, "too_large"


class UnsupportedMedia(ServiceError):
    status, kind = 415, "unsupported_media"


class Undecodable(ServiceError):
    status, kind = 422, "decode_failed"


class Unauthorized(ServiceError):
    status, kind = 401, "unauthorized"


class Overloaded(ServiceError):
    status, kind = 429, "overloaded"


class Unavailable(ServiceError):
    status, kind = 503, "unavailable"


class ClientGone(ServiceError):
    status, kind = 499, "client_gone"  # nobody reads it: the connection is closed


class TimedOut(ServiceError):
    status, kind = 504, "timeout"


class BatchFailed(ServiceError):
    status, kind = 500, "inference_failed"


def from_batch_error(err: Exception) -> ServiceError:
    """The batcher's refusals and failures as answers."""
    if isinstance(err, QueueFull):
        return Overloaded(str(err), headers={"Retry-After": "1"})
    if isinstance(err, QueueTimeout):
        return TimedOut(str(err))
    return BatchFailed(f"inference failed: {err}")


def from_video_error(err: VideoError) -> ServiceError:
    if isinstance(err, (DecodeFailed, TooCostly)):
        return Undecodable(str(err))
    if isinstance(err, NotAVideo):
        return UnsupportedMedia(str(err))
    if isinstance(err, VideoTooLarge):
        return PayloadTooLarge(str(err))
    return BadRequest(str(err))


def as_service_error(err: BaseException) -> ServiceError:
    """Any failure of one video as the error the service answers with: ours as they are,
    the decoder's and the batcher's through their tables, an unreadable file as 404, and
    anything else as an internal error that names its type."""
    if isinstance(err, ServiceError):
        return err
    if isinstance(err, VideoError):
        return from_video_error(err)
    if isinstance(err, (QueueFull, QueueTimeout, BatchError)):
        return from_batch_error(err)
    if isinstance(err, OSError):
        return NotFound(f"cannot read the file ({err.strerror or err})")
    return ServiceError(f"failed on this file ({type(err).__name__}: {err})")

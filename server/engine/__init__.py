"""The serving engine, apart from any transport: decode in worker processes, batch clips on
the model across requests, build the answer. The HTTP app, the Ray deployments and the
offline jobs all run it. Imports model/ and media/ only; never fastapi, starlette or ray.
"""

from .answer import build_answer
from .backends import Backend, BackendSpec, ClipResult, ModelInfo, create_backend
from .engine import Decoder, Engine, Model, decode_pool
from .errors import ServiceError, as_service_error
from .limits import BatchLimits, DecodeLimits
from .metrics import Metrics
from .runner import Inference, ModelRunner
from .schemas import ErrorBody, Explain, Recognition

__all__ = [
    "Backend",
    "BackendSpec",
    "BatchLimits",
    "ClipResult",
    "DecodeLimits",
    "Decoder",
    "Engine",
    "ErrorBody",
    "Explain",
    "Inference",
    "Metrics",
    "Model",
    "ModelInfo",
    "ModelRunner",
    "Recognition",
    "ServiceError",
    "as_service_error",
    "build_answer",
    "create_backend",
    "decode_pool",
]

"""Wire formats <-> numpy: ``/predict`` rows (``rows``) and KServe V2 JSON/binary tensors (``v2``)."""

from maas.inference.codecs.rows import decode_rows
from maas.inference.codecs.v2 import (
    V2Request,
    V2RequestedOutput,
    V2Tensor,
    encode_v2_response,
    parse_v2_request,
    v2_datatype,
    v2_model_input,
)

__all__ = [
    "V2Request",
    "V2RequestedOutput",
    "V2Tensor",
    "decode_rows",
    "encode_v2_response",
    "parse_v2_request",
    "v2_datatype",
    "v2_model_input",
]

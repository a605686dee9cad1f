from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.http._utils import _get_inference_request

from maas.errors import InvalidInput, MalformedJson
from maas.inference.codecs import V2Request, encode_v2_response, parse_v2_request, v2_model_input


def triton_body(
    array: np.ndarray, datatype: str, *, binary: bool, outputs: list[Any] | None = None, name: str = "input"
) -> tuple[bytes, int | None]:
    """A request body exactly as tritonclient's HTTP client sends it."""
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return _get_inference_request(
        inputs=[tensor], request_id="r-1", outputs=outputs, sequence_id=0, sequence_start=False,
        sequence_end=False, priority=0, timeout=None, custom_parameters=None,
    )


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [("FP32", np.float32), ("FP64", np.float64), ("INT32", np.int32), ("INT64", np.int64), ("FP16", np.float16)],
)
def test_tritonclient_requests_decode_to_the_models_fp32_batch(binary: bool, datatype: str, dtype: type) -> None:
    array: np.ndarray = (np.arange(12).reshape(3, 4) * 2).astype(dtype)
    body, header_length = triton_body(array, datatype, binary=binary)
    assert (header_length is not None) == binary
    request = parse_v2_request(body, header_length)
    assert request.id == "r-1"
    assert request.binary_output  # tritonclient asks binary outputs when none are named
    batch = v2_model_input(request, "input", [4])
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, array.astype(np.float32))


@pytest.mark.parametrize("binary", [False, True])
def test_bool_and_bytes_inputs_decode(binary: bool) -> None:
    flags = np.array([[True, False, True, True]])
    request = parse_v2_request(*triton_body(flags, "BOOL", binary=binary))
    np.testing.assert_array_equal(v2_model_input(request, "input", [4]), [[1, 0, 1, 1]])
    words = np.array([[b"1.5", b"2", b"3", b"-4"]], dtype=np.object_)
    request = parse_v2_request(*triton_body(words, "BYTES", binary=binary))
    np.testing.assert_array_equal(v2_model_input(request, "input", [4]), [[1.5, 2, 3, -4]])


def test_json_data_may_be_nested_or_flat() -> None:
    for data in ([[1, 2, 3, 4], [5, 6, 7, 8]], [1, 2, 3, 4, 5, 6, 7, 8]):
        body = orjson.dumps({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": data}]})
        assert v2_model_input(parse_v2_request(body), "input", [4]).shape == (2, 4)


def test_an_image_batch_decodes_with_its_channel_dimension() -> None:
    images = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    request = parse_v2_request(*triton_body(images, "FP32", binary=True))
    np.testing.assert_array_equal(v2_model_input(request, "input", [1, 8, 8]), images)


def v2_json(**tensor: Any) -> bytes:
    base = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    return orjson.dumps({"inputs": [{**base, **tensor}]})


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (v2_json(shape=[1, 3]), None, "Input 'input' has 4 values but its shape [1, 3] holds 3"),
        (v2_json(datatype="BF16"), None, "unsupported datatype 'BF16'"),
        (v2_json(data=[1, 2, "x", 4]), None, "not FP32 values in a regular shape"),
        (v2_json(datatype="INT64").replace(b"3", b"1180591620717411303424"), None,
         "Input 'input' has values out of the range of INT64"),
        (v2_json(datatype="INT8", data=[1, 2, 300, 4]), None, "out of the range of INT8"),
        (v2_json(datatype="UINT8", data=[1, -1, 3, 4]), None, "out of the range of UINT8"),
        (v2_json(datatype="UINT16", data=[0.5, 1, 2, 3]), None, "not UINT16 values"),  # no silent truncation
        (v2_json(datatype="INT32", data=[1e10, 1, 2, 3]), None, "not INT32 values"),  # no silent wrap
        (v2_json(datatype="BOOL", data=[1, 0, 1, 0]), None, "not BOOL values"),
        (v2_json(shape=[True, 4]), None, "a list of non-negative integers"),  # bool is an int to isinstance
        (v2_json(data=None, parameters={"binary_data_size": True}), None, "binary_data_size True"),
        (v2_json(data=None, parameters={"binary_data_size": 16}), None, "binary_data_size 16 but 0 bytes are left"),
        (v2_json() + b"\x00" * 4, len(v2_json()), "carries 4 bytes of tensor data but the inputs declare 0"),
        (v2_json(), 10_000, "Inference-Header-Content-Length is 10000"),
        (orjson.dumps({"inputs": []}), None, '"inputs": a non-empty list'),
        (orjson.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1]}]}), None, "neither"),
    ],
)
def test_malformed_v2_requests_are_refused_with_a_reason(body: bytes, header_length: int | None, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_v2_request(body, header_length)
    assert message in caught.value.message


def test_binary_sizes_must_match_the_declared_shape() -> None:
    header = orjson.dumps({"inputs": [
        {"name": "input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 12}}]})
    with pytest.raises(InvalidInput, match="needs 16 bytes of FP32 but binary_data_size is 12"):
        parse_v2_request(header + b"\x00" * 12, len(header))


def test_a_body_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedJson):
        parse_v2_request(b"{not json")


@pytest.mark.parametrize(
    ("data", "shape", "message"),
    [
        ([1, 2, 3, 1e39], [1, 4], "NaN, Infinity or a value too large for FP32 at index [0, 3]"),
        ([1, 2, 3], [1, 3], "has shape [1, 3]; the model takes [-1, 4]"),
        ([], [0, 4], "empty batch"),
    ],
)
def test_model_input_checks_shape_and_values(data: list[float], shape: list[int], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        v2_model_input(parse_v2_request(v2_json(shape=shape, data=data, datatype="FP64")), "input", [4])
    assert message in caught.value.message


def test_two_inputs_need_the_models_input_name() -> None:
    tensor = {"shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    body = orjson.dumps({"inputs": [{"name": "a", **tensor}, {"name": "b", **tensor}]})
    with pytest.raises(InvalidInput, match="one input named 'input'; the request has \\['a', 'b'\\]"):
        v2_model_input(parse_v2_request(body), "input", [4])


OUTPUTS = {
    "probabilities": np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32),
    "label": np.array(["dog", "cat"], dtype=object),
}


def decode_response(body: bytes, header_length: int | None) -> Any:
    return triton.InferResult.from_response_body(body, header_length=header_length)


@pytest.mark.parametrize("binary", [False, True])
def test_responses_round_trip_through_tritonclient(binary: bool) -> None:
    request = V2Request(inputs=[], binary_output=binary, id="7")
    body, header_length = encode_v2_response(model_name="pets", model_version="3", outputs=OUTPUTS, request=request)
    assert (header_length is not None) == binary
    result = decode_response(body, header_length)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), OUTPUTS["probabilities"])
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")] == ["dog", "cat"]
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == ("pets", "3", "7")


def test_requested_outputs_choose_names_and_encoding_one_by_one() -> None:
    outputs = [triton.InferRequestedOutput("label", binary_data=False),
               triton.InferRequestedOutput("probabilities", binary_data=True)]
    request = parse_v2_request(*triton_body(np.zeros([2, 4], np.float32), "FP32", binary=True, outputs=outputs))
    body, header_length = encode_v2_response(model_name="pets", model_version="3", outputs=OUTPUTS, request=request)
    assert header_length is not None
    header = orjson.loads(body[:header_length])
    assert [o["name"] for o in header["outputs"]] == ["label", "probabilities"]
    assert header["outputs"][0]["data"] == ["dog", "cat"]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 16}
    assert len(body) == header_length + 16
    decoded = decode_response(body, header_length).as_numpy("probabilities")
    np.testing.assert_array_equal(decoded, OUTPUTS["probabilities"])


def test_asking_for_an_unknown_output_is_refused() -> None:
    request = parse_v2_request(orjson.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                                         "data": [1, 2, 3, 4]}], "outputs": [{"name": "logits"}]}))
    with pytest.raises(InvalidInput, match="Unknown output 'logits'"):
        encode_v2_response(model_name="m", model_version="1", outputs=OUTPUTS, request=request)

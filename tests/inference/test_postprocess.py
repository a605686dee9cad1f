from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from maas.api.raw import json_answer
from maas.errors import InferenceFailed
from maas.inference.postprocess import annotate, class_scores, label_spec, postprocess, with_labels
from maas.inference.servable import ServableVersion
from tests.inference.fakes import make_servable


def sent(answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` as a client reads it: written as ``json_answer`` writes it, parsed back."""
    return dict(orjson.loads(json_answer(answer).body))


def classifier(classes: list[Any] | None) -> ServableVersion:
    return make_servable({}, task="classification", classes=classes)


PROBS = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]], dtype=np.float32)


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ({"probabilities": PROBS}, PROBS),  # maas convention: already a distribution
        ({"scores": np.log(PROBS)}, PROBS),  # imported model, other name, logits: softmax applied
        ({"p": np.array([[0.8], [0.3]], np.float32)}, [[0.2, 0.8], [0.7, 0.3]]),  # one column = P(second class)
        ({"z": np.array([[0.0], [100.0]], np.float32)}, [[0.5, 0.5], [0.0, 1.0]]),  # ... or its logit
    ],
)
def test_scores_become_probabilities(outputs: dict[str, np.ndarray], expected: Any) -> None:
    n = np.asarray(expected).shape[1]
    np.testing.assert_allclose(class_scores(classifier(list(range(n))), outputs), expected, atol=1e-6)


def test_predictions_are_the_datasets_own_labels() -> None:
    answer = sent(postprocess(classifier(["cat", "dog", "eel"]), {"probabilities": PROBS}))
    assert answer["predictions"] == ["dog", "cat"]
    np.testing.assert_allclose(answer["probabilities"], PROBS)


def test_without_known_classes_predictions_are_indices() -> None:
    assert sent(postprocess(classifier(None), {"probabilities": PROBS}))["predictions"] == [1, 0]


def test_float32_scores_are_written_as_their_shortest_text_and_read_back_exactly() -> None:
    body = json_answer(postprocess(classifier(None), {"probabilities": PROBS})).body
    assert b'"probabilities":[[0.1,0.7,0.2],[0.6,0.3,0.1]]' in body  # not 0.10000000149011612
    assert np.array_equal(np.asarray(orjson.loads(body)["probabilities"], dtype=np.float32), PROBS)


def test_integer_classes_make_an_int64_label_tensor() -> None:
    servable = classifier([3, 5, 7])
    spec = label_spec(servable)
    assert spec is not None and spec.datatype == "INT64"
    labels = with_labels(servable, {"probabilities": PROBS})["label"]
    assert labels.dtype == np.int64 and labels.tolist() == [5, 3]


def test_a_score_count_that_disagrees_with_the_classes_is_an_inference_failure() -> None:
    with pytest.raises(InferenceFailed, match="returns 3 scores per row but version 1 has 4 classes"):
        postprocess(classifier(["a", "b", "c", "d"]), {"probabilities": PROBS})


@pytest.mark.parametrize(
    ("values", "expected"),
    [(np.array([[1.5], [2.5]], np.float32), [1.5, 2.5]), (np.array([[1, 2], [3, 4]], np.float32), [[1, 2], [3, 4]])],
)
def test_regression_returns_values(values: np.ndarray, expected: list[Any]) -> None:
    servable = make_servable({}, task="regression")
    assert sent(postprocess(servable, {"prediction": values})) == {"predictions": expected}
    assert with_labels(servable, {"prediction": values}) == {"prediction": values}


@pytest.mark.parametrize("classes", [["cat", "dog", "eel"], [3, 5, 7], None])
@pytest.mark.parametrize("outputs", [{"probabilities": PROBS}, {"scores": np.log(PROBS)}])
def test_a_batch_annotated_once_answers_each_request_as_if_scored_alone(
    classes: list[Any] | None, outputs: dict[str, np.ndarray]
) -> None:
    servable = classifier(classes)
    annotated = annotate(servable, outputs)  # what the runner does once per batch
    for row in range(len(PROBS)):
        alone = {name: value[row:row + 1] for name, value in outputs.items()}
        part = {name: value[row:row + 1] for name, value in annotated.items()}  # what collate.split hands back
        expected, got = postprocess(servable, alone), postprocess(servable, part)
        assert got["predictions"] == expected["predictions"]
        np.testing.assert_allclose(got["probabilities"], expected["probabilities"], rtol=1e-6)
        v2 = with_labels(servable, part)
        assert sorted(v2) == sorted([*outputs, "label"])  # the internal scores are never a V2 output
        np.testing.assert_array_equal(v2["label"], with_labels(servable, alone)["label"])


def test_annotating_a_regressor_changes_nothing() -> None:
    servable = make_servable({}, task="regression")
    values = {"prediction": np.array([[1.5], [2.5]], np.float32)}
    assert annotate(servable, values) is values


def test_arrays_orjson_refuses_are_written_as_lists() -> None:
    strided = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]  # not C-contiguous
    labels = np.asarray(["cat", 3], dtype=object)
    assert orjson.loads(json_answer({"a": strided, "b": labels}).body) == {"a": [[0, 2], [4, 6], [8, 10]],
                                                                           "b": ["cat", 3]}
    with pytest.raises(TypeError):
        json_answer({"a": object()})

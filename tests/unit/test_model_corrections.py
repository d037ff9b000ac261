"""The named corrections of botocore's model: each still applies to the installed botocore
(when one stops applying, botocore changed the trait: look again, and drop the correction if
botocore now agrees with the service), and InvokeRestApi's Path is validated with its own."""

from __future__ import annotations

import copy

import botocore.session
import pytest

from airgate.aws.spec import MODEL_CORRECTIONS, ModelCorrection, corrected, service_model
from airgate.aws.validate import validate
from airgate.errors import ValidationException

INVOKE = service_model().operation_model("InvokeRestApi").input_shape


@pytest.mark.parametrize("correction", MODEL_CORRECTIONS,
                         ids=[f"{c.service}.{c.shape}.{c.trait}" for c in MODEL_CORRECTIONS])
def test_each_correction_still_applies(correction: ModelCorrection) -> None:
    raw = botocore.session.get_session().get_service_data(correction.service)
    assert raw["shapes"][correction.shape][correction.trait] == correction.model_value
    assert corrected(correction.service, raw)["shapes"][correction.shape][
        correction.trait] == correction.value
    assert raw["shapes"][correction.shape][correction.trait] == correction.model_value, \
        "corrected() must leave botocore's own description alone"
    assert correction.reason


def test_a_trait_botocore_has_changed_is_left_as_botocore_has_it() -> None:
    raw = copy.deepcopy(botocore.session.get_session().get_service_data("mwaa"))
    raw["shapes"]["RestApiPath"]["max"] = 4096
    assert corrected("mwaa", raw)["shapes"]["RestApiPath"]["max"] == 4096


def test_corrections_are_per_service() -> None:
    raw = botocore.session.get_session().get_service_data("mwaa")
    assert corrected("another-service", raw)["shapes"]["RestApiPath"]["max"] == 64


def test_the_loaded_model_has_the_corrections() -> None:
    assert INVOKE.members["Path"].metadata == {"min": 1, "max": 2048}


@pytest.mark.parametrize("length", [1, 64, 65, 300, 2048])
def test_paths_up_to_2048_characters_pass_validation(length: int) -> None:
    validate(INVOKE, {"Name": "env", "Method": "GET", "Path": "/" + "a" * (length - 1)})


def test_a_path_over_2048_characters_fails_validation() -> None:
    with pytest.raises(ValidationException) as excinfo:
        validate(INVOKE, {"Name": "env", "Method": "GET", "Path": "/" + "a" * 2048})
    assert excinfo.value.message == (
        "1 validation error detected: Value at 'path' failed to satisfy constraint: Member "
        "must have length less than or equal to 2048")

from typing import Any

import pytest
from pydantic import ValidationError

from chimp.shared.schemas import PluginArgument, PluginDataset, PluginInfo
from chimp.shared.schemas.plugins import describe_validation_error


@pytest.fixture
def info() -> PluginInfo:
    return PluginInfo(
        name="demo",
        version="1.0",
        arguments=[
            PluginArgument(name="epochs", type="int", description="passes"),
            PluginArgument(name="lr", type="float", optional=True, default=0.01),
            PluginArgument(name="augment", type="bool", optional=True, default=False),
            PluginArgument(
                name="mode",
                type="str",
                optional=True,
                default="train",
                choices=["train", "calibrate"],
            ),
        ],
        datasets=[PluginDataset(name="train"), PluginDataset(name="test", optional=True)],
    )


def test_valid_arguments_become_typed_values_with_defaults(info: PluginInfo) -> None:
    values = info.validate_arguments({"epochs": 3, "lr": 1})
    assert values == {"epochs": 3, "lr": 1.0, "augment": False, "mode": "train"}
    assert isinstance(values["lr"], float)


@pytest.mark.parametrize(
    ("arguments", "bad_field"),
    [
        ({"epochs": "3"}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({}, "epochs"),
        ({"epochs": 1, "augment": "yes"}, "augment"),
        ({"epochs": 1, "mode": "dance"}, "mode"),
        ({"epochs": 1, "unknown": 1}, "unknown"),
    ],
)
def test_bad_arguments_name_the_field(
    info: PluginInfo, arguments: dict[str, Any], bad_field: str
) -> None:
    with pytest.raises(ValidationError) as excinfo:
        info.validate_arguments(arguments)
    problems = describe_validation_error(excinfo.value, "arguments")
    assert ["arguments", bad_field] in [p["loc"] for p in problems]


def test_every_bad_argument_is_reported_at_once(info: PluginInfo) -> None:
    with pytest.raises(ValidationError) as excinfo:
        info.validate_arguments({"lr": "fast", "bogus": True})
    fields = {p["loc"][1] for p in describe_validation_error(excinfo.value, "arguments")}
    assert fields == {"epochs", "lr", "bogus"}


def test_dataset_mapping_problems(info: PluginInfo) -> None:
    assert info.validate_datasets({"train": "faces"}) == []
    problems = info.validate_datasets({"valid": "x"})
    assert {tuple(p["loc"]) for p in problems} == {("datasets", "valid"), ("datasets", "train")}


def test_json_schema_lists_arguments_and_required(info: PluginInfo) -> None:
    schema = info.arguments_schema()
    assert set(schema["properties"]) == {"epochs", "lr", "augment", "mode"}
    assert schema["required"] == ["epochs"]
    assert schema["additionalProperties"] is False

from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from chimp.shared.schemas import PluginArgument, PluginDataset, PluginInfo
from chimp.shared.schemas.plugins import describe_validation_error, plugin_arguments


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


def test_bounds_refuse_values_and_appear_in_the_schema() -> None:
    info = PluginInfo(
        name="bounded",
        version="1",
        arguments=[
            PluginArgument(name="epochs", type="int", optional=True, default=3, ge=1, le=1000),
            PluginArgument(name="lr", type="float", optional=True, default=0.1, gt=0),
            PluginArgument(name="split", type="float", optional=True, default=0.2, gt=0, lt=1),
        ],
    )
    assert info.validate_arguments({"epochs": 1, "lr": 2, "split": 0.5})["lr"] == 2.0
    with pytest.raises(ValidationError) as excinfo:
        info.validate_arguments({"epochs": -5, "lr": 0, "split": 1})
    problems = describe_validation_error(excinfo.value, "arguments")
    assert {p["loc"][1] for p in problems} == {"epochs", "lr", "split"}
    assert any("greater than or equal to 1" in p["msg"] for p in problems)
    props = info.arguments_schema()["properties"]
    assert props["epochs"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert props["split"]["anyOf"][0]["exclusiveMaximum"] == 1


def test_bounds_are_only_for_numbers_and_the_default_must_keep_them() -> None:
    with pytest.raises(ValidationError, match="only to numbers"):
        PluginArgument(name="mode", type="str", ge=1)
    with pytest.raises(ValidationError, match="default"):
        PluginArgument(name="epochs", type="int", optional=True, default=0, ge=1)


class HelloArguments(BaseModel):
    greeting: str = Field(description="Text to echo back.")
    times: int = Field(default=1, ge=1, le=10, description="How often.")
    rate: float = Field(default=0.5, gt=0, lt=1)
    style: Literal["plain", "loud"] = "plain"
    shout: bool = False


def test_a_pydantic_model_declares_the_arguments_and_gives_typed_access() -> None:
    arguments = plugin_arguments(HelloArguments)
    by_name = {a.name: a for a in arguments}
    assert by_name["greeting"].optional is False
    assert by_name["greeting"].description == "Text to echo back."
    assert (by_name["times"].type, by_name["times"].ge, by_name["times"].le) == ("int", 1, 10)
    assert (by_name["rate"].gt, by_name["rate"].lt, by_name["rate"].default) == (0, 1, 0.5)
    assert by_name["style"].choices == ["plain", "loud"]
    assert by_name["shout"].type == "bool"
    info = PluginInfo(name="hello", version="1", arguments=arguments)
    values = info.validate_arguments({"greeting": "hi", "times": 2})
    typed = HelloArguments.model_validate(values)
    assert (typed.greeting, typed.times, typed.style) == ("hi", 2, "plain")
    with pytest.raises(ValidationError):
        info.validate_arguments({"greeting": "hi", "times": 11})

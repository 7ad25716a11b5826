"""Plugin descriptions and typed argument validation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

ArgumentType = Literal["str", "int", "float", "bool"]

_PYTHON_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


class PluginArgument(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: ArgumentType
    description: str = ""
    optional: bool = False
    default: Any = None
    choices: list[Any] | None = None


class PluginDataset(BaseModel):
    name: str
    description: str = ""
    optional: bool = False


class _StrictArguments(BaseModel):
    # Strict mode: "3" is not an int and 1 is not a bool; a JSON float 2.0 is not an int either.
    model_config = ConfigDict(extra="forbid", strict=True)


class PluginInfo(BaseModel):
    name: str
    version: str
    description: str = ""
    arguments: list[PluginArgument] = Field(default_factory=list)
    datasets: list[PluginDataset] = Field(default_factory=list)
    model_return_type: str | None = None
    comparable_models: bool = Field(
        default=True,
        description="False: its models cannot be scored against each other, so the evaluation "
        "gate never promotes them (promote by hand).",
    )

    def arguments_model(self) -> type[BaseModel]:
        """A pydantic model whose fields are this plugin's arguments, with types enforced."""
        fields: dict[str, Any] = {}
        for arg in self.arguments:
            annotation: Any = _PYTHON_TYPES[arg.type]
            if arg.choices:
                annotation = Literal[tuple(arg.choices)]
            if arg.type == "float":
                # JSON has one number type: accept 3 for a float argument.
                annotation = annotation | int if not arg.choices else annotation
            if arg.optional:
                fields[arg.name] = (
                    annotation | None,
                    Field(default=arg.default, description=arg.description),
                )
            else:
                fields[arg.name] = (annotation, Field(description=arg.description))
        return create_model(
            f"{self.name.title().replace('_', '')}Arguments",
            __base__=_StrictArguments,
            **fields,
        )

    def arguments_schema(self) -> dict[str, Any]:
        return self.arguments_model().model_json_schema()

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Typed values for ``arguments``; raises :class:`pydantic.ValidationError`."""
        model = self.arguments_model().model_validate(arguments)
        values = model.model_dump()
        for arg in self.arguments:
            if arg.type == "float" and values.get(arg.name) is not None:
                values[arg.name] = float(values[arg.name])
        return values

    def validate_datasets(self, datasets: dict[str, str]) -> list[dict[str, Any]]:
        """Problems with the dataset mapping, as a list of ``{"loc", "msg"}`` (empty when fine)."""
        problems: list[dict[str, Any]] = []
        known = {d.name for d in self.datasets}
        for key in datasets:
            if key not in known:
                problems.append({"loc": ["datasets", key], "msg": f"unknown dataset key '{key}'"})
        for spec in self.datasets:
            if not spec.optional and spec.name not in datasets:
                problems.append(
                    {"loc": ["datasets", spec.name], "msg": f"dataset '{spec.name}' is required"}
                )
        return problems


def describe_validation_error(exc: ValidationError, prefix: str) -> list[dict[str, Any]]:
    """Flatten a pydantic error into ``{"loc", "msg", "type"}`` entries under ``prefix``."""
    return [
        {"loc": [prefix, *[str(p) for p in err["loc"]]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]

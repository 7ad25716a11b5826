"""Plugin descriptions and typed argument validation.

An argument has a type and may declare bounds (``ge``, ``gt``, ``le``, ``lt``) and ``choices``;
:meth:`PluginInfo.arguments_model` turns them into a strict pydantic model, so the API refuses a
value the plugin cannot use (422 naming the field) before anything is queued, and the JSON
Schema carries them to the web form (``minimum``, ``exclusiveMinimum``, ``enum``, ...). A plugin
may also write its arguments as a pydantic model and list them with :func:`plugin_arguments`.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

import annotated_types
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import PydanticUndefined

ArgumentType = Literal["str", "int", "float", "bool"]

_PYTHON_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
_TYPE_NAMES = {python: name for name, python in _PYTHON_TYPES.items()}
_BOUNDS = ("ge", "gt", "le", "lt")

Bound = int | float | None


class PluginArgument(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: ArgumentType
    description: str = ""
    optional: bool = False
    default: Any = None
    choices: list[Any] | None = None
    ge: Bound = Field(default=None, description="Smallest allowed value (numbers only).")
    gt: Bound = Field(default=None, description="Values must be greater than this.")
    le: Bound = Field(default=None, description="Largest allowed value (numbers only).")
    lt: Bound = Field(default=None, description="Values must be less than this.")

    def bounds(self) -> dict[str, int | float]:
        return {key: value for key in _BOUNDS if (value := getattr(self, key)) is not None}

    def annotation(self) -> Any:
        """The Python type a value must have, with its choices and bounds."""
        annotation: Any = _PYTHON_TYPES[self.type]
        if self.choices:
            annotation = Literal[tuple(self.choices)]
        bounds = self.bounds()
        return Annotated[annotation, Field(**bounds)] if bounds else annotation  # type: ignore[call-overload]

    @model_validator(mode="after")
    def _bounds_fit(self) -> Self:
        if self.bounds() and self.type not in ("int", "float"):
            raise ValueError(
                f"argument '{self.name}': bounds apply only to numbers, not {self.type}"
            )
        if self.optional and self.default is not None:
            try:
                TypeAdapter(self.annotation()).validate_python(self.default, strict=True)
            except ValidationError as exc:
                reason = exc.errors()[0]["msg"]
                raise ValueError(
                    f"argument '{self.name}': default {self.default!r} breaks its rule: {reason}"
                ) from None
        return self


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
            # Strict floats still take a JSON 3 for 3.0; strict ints refuse 2.5 and "3".
            annotation = arg.annotation()
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


def _argument_type(annotation: Any) -> tuple[str, list[Any] | None]:
    """The argument type name and choices of a model field's annotation."""
    if get_origin(annotation) is Literal:
        choices = list(get_args(annotation))
        kinds = {type(c) for c in choices}
        if len(kinds) != 1 or next(iter(kinds)) not in _TYPE_NAMES:
            raise TypeError(f"choices must share one of str/int/float/bool: {choices}")
        return _TYPE_NAMES[next(iter(kinds))], choices
    if annotation in _TYPE_NAMES:
        return _TYPE_NAMES[annotation], None
    raise TypeError(f"argument type must be str, int, float, bool or a Literal: {annotation}")


def plugin_arguments(model: type[BaseModel]) -> list[PluginArgument]:
    """The arguments declared by a pydantic model's fields, with their bounds and choices.

    ``x: int = Field(default=10, ge=1)`` becomes an optional int argument with ``ge=1``;
    ``Literal["a", "b"]`` gives choices; a field without a default is required; ``X | None``
    is allowed. A plugin then reads typed values with ``model.model_validate(context.arguments)``.
    """
    arguments = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                raise TypeError(f"argument '{name}': one type (or X | None), got {annotation}")
            annotation = members[0]
        kind, choices = _argument_type(annotation)
        bounds: dict[str, Any] = {}
        for meta in field.metadata:
            for key in _BOUNDS:
                if isinstance(meta, getattr(annotated_types, key.title())):
                    bounds[key] = getattr(meta, key)
        required = field.default is PydanticUndefined and field.default_factory is None
        arguments.append(
            PluginArgument(
                name=name,
                type=kind,
                description=field.description or "",
                optional=not required,
                default=None if required else field.get_default(call_default_factory=True),
                choices=choices,
                **bounds,
            )
        )
    return arguments

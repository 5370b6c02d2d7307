"""User-registered JSON Schemas: checked against their draft's meta-schema once, then used to validate
strictly (formats asserted, local `$ref`s only) through the same Pydantic path as the built-in schemas."""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Self

import jsonschema
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema.exceptions import SchemaError as JsonSchemaMetaError
from pydantic import ConfigDict, RootModel, model_validator

from schemas.errors import InvalidSchemaError, SchemaError

DEFAULT_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The draft assumed when a schema declares no `$schema`."""

MAX_REPORTED_ERRORS = 20
"""An instance can break a schema in thousands of places; the first few are enough to act on."""

# Every format jsonschema can check, whatever the draft: a format that a draft merely "annotates" is
# still a promise about the extracted value, and an unchecked promise is how invalid records slip
# through. Formats nobody defines (`"format": "mongoId"`) stay annotations, as the spec requires.
_FORMAT_CHECKER = jsonschema.FormatChecker()

CHECKED_FORMATS: frozenset[str] = frozenset(_FORMAT_CHECKER.checkers)
"""Formats actually asserted here. jsonschema silently skips a format whose checker library is missing
(date-time needs rfc3339-validator, uri needs rfc3986-validator...): install `jsonschema[format-nongpl]`."""

_SENTINEL: Any = object()


@dataclass(frozen=True)
class InstanceErrorDetail:
    """Where an instance breaks the schema (a JSON path) and which keyword it breaks; never the value."""

    path: str
    keyword: str
    missing: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.missing:
            return f"{self.path} ({self.keyword}: {', '.join(self.missing)})"
        return f"{self.path} ({self.keyword})"


class InstanceValidationError(SchemaError, ValueError):
    """An instance that does not match its schema; the message lists paths and keywords, never values
    (an instance is extracted document text and may be PHI)."""

    code = "instance_invalid"

    def __init__(self, errors: Sequence[InstanceErrorDetail], *, more: bool = False):
        self.errors: tuple[InstanceErrorDetail, ...] = tuple(errors)
        listed = "; ".join(str(e) for e in self.errors)
        suffix = "; and more" if more else ""
        super().__init__(f"instance does not match the schema at: {listed}{suffix}")


class UserSchema:
    """A meta-validated user JSON Schema with a strict validator; build it with `load_user_schema`."""

    def __init__(self, schema: dict[str, Any], dialect: str, validator: Any, *, name: str):
        self._schema = schema
        self.dialect = dialect
        self.name = name
        self._validator = validator

    @property
    def schema(self) -> dict[str, Any]:
        """A copy of the schema, so no caller can change what the validator enforces."""
        return copy.deepcopy(self._schema)

    def errors(self, instance: Any) -> list[InstanceErrorDetail]:
        """Up to `MAX_REPORTED_ERRORS` places where `instance` breaks the schema (empty when valid)."""
        details, _ = self._collect(instance)
        return details

    def is_valid(self, instance: Any) -> bool:
        """Whether `instance` matches the schema."""
        return not self._collect(instance, limit=1)[0]

    def validate(self, instance: Any) -> None:
        """Raise `InstanceValidationError` (paths and keywords only) unless `instance` matches."""
        details, more = self._collect(instance)
        if details:
            raise InstanceValidationError(details, more=more)

    @cached_property
    def model(self) -> type[RootModel[Any]]:
        """A Pydantic `RootModel[Any]` whose validator runs this schema, for the built-ins' code path."""
        return _build_model(self)

    def _collect(self, instance: Any, limit: int = MAX_REPORTED_ERRORS) -> tuple[list[InstanceErrorDetail], bool]:
        try:
            found = list(itertools.islice(self._validator.iter_errors(instance), limit + 1))
        except RecursionError:
            # A deeply nested instance under a recursive schema: refuse it rather than crash the worker.
            return [InstanceErrorDetail(path="$", keyword="max_depth")], False
        except (referencing.exceptions.Unresolvable, re.error) as e:
            # load_user_schema checks refs and patterns up front; this is the net for what it cannot see.
            raise InvalidSchemaError(f"schema cannot be applied: {type(e).__name__}") from e
        found.sort(key=lambda e: (len(e.path), [str(p) for p in e.path]))
        return [_detail(e) for e in found[:limit]], len(found) > limit


def load_user_schema(schema: dict[str, Any], *, name: str = "UserSchema") -> UserSchema:
    """Check `schema` against the meta-schema of its `$schema` draft (2020-12 if absent) and return it
    ready to validate; anything a strict validator could not apply raises `InvalidSchemaError`."""
    if not isinstance(schema, dict):
        raise InvalidSchemaError(f"a JSON Schema must be a JSON object, not {type(schema).__name__}")
    try:
        # A round trip through JSON makes a private copy and refuses what is not JSON (NaN, objects).
        own: dict[str, Any] = json.loads(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise InvalidSchemaError(f"schema is not plain JSON: {e}") from e

    dialect = own.get("$schema", DEFAULT_DIALECT)
    if not isinstance(dialect, str):
        raise InvalidSchemaError("$schema must be a string URI")
    validator_cls = jsonschema.validators.validator_for({"$schema": dialect}, default=_SENTINEL)
    if validator_cls is _SENTINEL:
        raise InvalidSchemaError(f"unknown $schema {dialect!r}: use a JSON Schema draft URI (draft-04 to 2020-12)")
    try:
        validator_cls.check_schema(own)
    except JsonSchemaMetaError as e:
        raise InvalidSchemaError(_meta_reason(e, dialect)) from e

    specification = referencing.jsonschema.specification_with(dialect, default=referencing.jsonschema.DRAFT202012)
    _check_refs_and_patterns(specification.create_resource(own))
    # An empty registry: no `$ref` is ever fetched over the network (jsonschema's default would).
    validator = validator_cls(own, format_checker=_FORMAT_CHECKER, registry=referencing.Registry())
    return UserSchema(own, dialect, validator, name=name)


def _meta_reason(error: JsonSchemaMetaError, dialect: str) -> str:
    # check_schema already raised the best match; its message quotes schema text, never instance data.
    message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
    return f"not a valid JSON Schema ({dialect}): at {error.json_path}: {message}"


def _check_refs_and_patterns(root: referencing.Resource[Any]) -> None:
    """Resolve every `$ref` and compile every regex now, so a broken schema fails at registration and
    not halfway through validating a record."""
    from jsonschema_specifications import REGISTRY as META_SCHEMAS

    registry: referencing.Registry[Any] = META_SCHEMAS.combine(referencing.Registry())
    stack = [(registry.resolver_with_root(root), root)]
    while stack:  # iterative: a deep schema must not exhaust the Python stack
        resolver, resource = stack.pop()
        contents = resource.contents
        if isinstance(contents, dict):
            ref = contents.get("$ref")
            if isinstance(ref, str):
                try:
                    resolver.lookup(ref)
                except referencing.exceptions.Unresolvable as e:
                    why = "points at nothing" if ref.startswith("#") else "remote references are not fetched"
                    raise InvalidSchemaError(f"cannot resolve $ref {ref!r}: {why}") from e
            for regex in _regexes(contents):
                try:
                    re.compile(regex)
                except re.error as e:
                    raise InvalidSchemaError(f"pattern {regex!r} is not a valid regular expression: {e}") from e
        stack.extend((resolver.in_subresource(sub), sub) for sub in resource.subresources())


def _regexes(contents: dict[str, Any]) -> Iterator[str]:
    pattern = contents.get("pattern")
    if isinstance(pattern, str):
        yield pattern
    pattern_properties = contents.get("patternProperties")
    if isinstance(pattern_properties, dict):
        yield from pattern_properties


def _detail(error: Any) -> InstanceErrorDetail:
    keyword = str(error.validator)
    missing: tuple[str, ...] = ()
    if keyword == "required" and isinstance(error.instance, dict) and isinstance(error.validator_value, list):
        # Property names come from the schema, not the document: safe to name.
        missing = tuple(str(k) for k in error.validator_value if k not in error.instance)
    return InstanceErrorDetail(path=str(error.json_path), keyword=keyword, missing=missing)


def _build_model(user: UserSchema) -> type[RootModel[Any]]:
    class UserSchemaModel(RootModel[Any]):
        # hide_input_in_errors: Pydantic would otherwise echo the extracted value into the error text.
        model_config = ConfigDict(hide_input_in_errors=True, title=user.name)

        @model_validator(mode="after")
        def _matches_json_schema(self) -> Self:
            user.validate(self.root)
            return self

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            """The user's own schema, unchanged: it is what the grammar backend must enforce."""
            return user.schema

    UserSchemaModel.__name__ = UserSchemaModel.__qualname__ = user.name
    return UserSchemaModel

"""A tenant's schema held to our bounds before any third-party code sees it: two cheap, linear walks.

The schema as written, in one iterative pass (a schema nested 5,000 levels deep is refused, not a
stack overflow): its size as compact JSON, its JSON nesting, its longest string, its largest `enum`,
the properties it declares, and every count a generation would have to honour (`minItems`,
`maxLength`, ... and the `{n,m}` of each `pattern`, nested counts multiplied): `minItems: 1000000000`
or `^(a|aa){1000,}b$` can never run in bounded time. Then the schema as the prompt renderer and the
grammar compilers see it, every `$ref` expanded in place: a 2 KB schema whose `$defs` fan out
(d0 -> {l: d1, r: d1}, 30 levels) is 2^30 nodes to them, and a `$ref` that reaches itself never ends.
That walk counts the expanded tree with one memo per `$ref` target, refuses a `$ref` cycle, and stops
at `max_depth`, well inside Python's recursion limit.

Admission (`service/jobs/admission.py`) runs `check_shape` first, and a job runs it again for schemas
registered before the bounds existed. The limits come in as `SchemaBounds` (this package imports
nothing of ours; the service maps its settings onto one). A refusal's details name our limit and its
value, never anything of the schema (not even a property name).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, Final

from schemas.errors import InvalidSchemaError

TOO_LARGE: Final = "schema_too_large"
"""Bigger than a bound: bytes, expanded subschemas, properties, a string, an enum, the rendered prompt."""
TOO_DEEP: Final = "schema_too_deep"
"""Nested deeper than `max_depth` subschemas once expanded (or its JSON deeper than `json_depth`)."""
RECURSIVE: Final = "schema_recursive"
"""A `$ref` cycle: the expanded schema, its prompt and its grammar would never end."""
UNRUNNABLE: Final = "schema_unrunnable"
"""A count a generation could never honour in bounded time, or a schema whose trial ran out of time."""
NOT_JSON: Final = "invalid_schema"
"""Not JSON at all (NaN, Infinity, a non-string key): nothing downstream could store or compile it."""
SHAPE_CODES: Final = frozenset({TOO_LARGE, TOO_DEEP, RECURSIVE, UNRUNNABLE, NOT_JSON})


@dataclass(frozen=True)
class SchemaBounds:
    """What a tenant's schema may be; the settings (`ABSTRACTOR_SCHEMA_MAX_*`) take their defaults from here."""

    max_bytes: int = 256 * 1024
    """Its size as compact JSON (UTF-8)."""
    max_nodes: int = 5_000
    """Subschemas once every `$ref` is followed; the built-in schemas expand to under 100."""
    max_depth: int = 32
    """Nesting of subschemas once `$ref`s are followed (deep enough for any record a person reviews)."""
    max_properties: int = 1_000
    """Properties declared in the whole schema, as written."""
    max_string_chars: int = 4_096
    """The longest string anywhere in it: a `const`, an `enum` member, a `default`, a `pattern`, a key."""
    max_enum: int = 1_000
    """Members of one `enum`."""
    max_repeat: int = 500
    """The largest count a generation must honour: `minItems`, `maxLength`, ... and a pattern's `{n,m}`."""
    max_prompt_chars: int = 32_768
    """The rendered prompt prefix (instructions and one line per field), checked by admission's trial."""

    @property
    def json_depth(self) -> int:
        """JSON nesting as written: a subschema level takes two (`properties` -> name -> schema), so
        four per level leaves room for nested `const` values."""
        return 4 * self.max_depth

    def as_dict(self) -> dict[str, int]:
        """The bounds as plain numbers (what a child process is sent)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class SchemaShapeError(InvalidSchemaError):
    """A schema outside our bounds; `code` says how (HTTP 422). `details` hold our limit's name and value
    (`{"limit": "schema_max_bytes", "max": 262144}`): nothing of the tenant's schema is echoed."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def refusal(code: str, message: str, bound: str, value: int) -> SchemaShapeError:
    """A refusal naming our bound as its setting (`schema_<bound>`) and the bound's value."""
    return SchemaShapeError(code, message, {"limit": f"schema_{bound}", "max": value})


def check_shape(schema: Any, bounds: SchemaBounds = SchemaBounds()) -> None:
    """Raise `SchemaShapeError` unless `schema` stays within `bounds`, as written and expanded.

    Codes: `schema_too_large`, `schema_too_deep`, `schema_recursive`, `schema_unrunnable`, and
    `invalid_schema` for values JSON cannot hold. Linear in the schema's size; never recursive beyond
    `bounds.max_depth`.
    """
    _Written(bounds).walk(schema)
    if isinstance(schema, dict):
        _Expanded(schema, bounds).size(schema, 1)


# Keywords whose values are subschemas (one, a list of them, or a map of names to them).
_SINGLE: Final = (
    "items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
    "additionalItems", "unevaluatedItems", "unevaluatedProperties",
)  # fmt: skip
_LISTS: Final = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
_MAPS: Final = ("properties", "patternProperties", "dependentSchemas", "dependencies")
_DEFINITIONS: Final = ("$defs", "definitions")
_COUNTS: Final = frozenset(
    {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties", "minContains",
     "maxContains"}
)  # fmt: skip
_QUANTIFIER: Final = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_QUOTE: Final = json.encoder.encode_basestring  # a string as JSON writes it (ensure_ascii=False), in C


def subschemas(node: dict[str, Any]) -> Iterator[Any]:
    """The subschemas a schema applies directly (not its `$defs`, which only count where referenced)."""
    for key in _SINGLE:
        if isinstance(node.get(key), dict):
            yield node[key]
    for key in _LISTS:
        if isinstance(node.get(key), list):
            yield from node[key]
    for key in _MAPS:
        if isinstance(node.get(key), dict):
            yield from (value for value in node[key].values() if isinstance(value, dict))


def pattern_repeat(pattern: str) -> int:
    """The largest repetition count `pattern` asks for, nested counts multiplied (`(a{10}){20}` is 200).

    A scan, not a parser: escapes and character classes are skipped, a malformed pattern is left to the
    validator, and an unbounded `*` or `+` counts as nothing (it asks for no fixed count).
    """
    groups = [1]  # the largest count inside each open group
    last = 1  # the count of the atom just read (a group's own, or 1)
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            i, last = i + 2, 1
        elif char == "[":
            i, last = _class_end(pattern, i), 1
        elif char == "(":
            groups.append(1)
            i, last = i + 1, 1
        elif char == ")" and len(groups) > 1:
            last = groups.pop()
            groups[-1] = max(groups[-1], last)
            i += 1
        elif char == "{" and (match := _QUANTIFIER.match(pattern, i)):
            low, high = int(match[1]), int(match[2] or 0)
            last *= max(low, high)
            groups[-1] = max(groups[-1], last)
            i = match.end()
        else:
            i, last = i + 1, 1
    return max(groups)


def _class_end(pattern: str, start: int) -> int:
    """The index just past the character class opening at `start` (its end, if unclosed)."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1  # a leading `]` is a literal
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


_DATA, _SCHEMA, _SCHEMAS, _PATTERNS = range(4)
"""What a value is to the written walk: data, a subschema, a list or map of them, a map keyed by patterns."""


class _Written:
    """The schema as written: one pass over every value, with an explicit stack."""

    def __init__(self, bounds: SchemaBounds) -> None:
        self.bounds = bounds
        self.bytes = 0
        self.properties = 0

    def walk(self, schema: Any) -> None:
        stack: list[tuple[Any, int, int]] = [(schema, 1, _SCHEMA)]
        while stack:
            value, depth, kind = stack.pop()
            if depth > self.bounds.json_depth:
                raise too_deep(self.bounds)
            if isinstance(value, dict):
                self._add(2 + max(len(value) - 1, 0))
                if kind == _SCHEMA:
                    self._schema_keywords(value)
                for key, item in value.items():
                    self._key(key, kind)
                    stack.append((item, depth + 1, self._kind_of(key, item, kind)))
            elif isinstance(value, list):
                self._add(2 + max(len(value) - 1, 0))
                member = _SCHEMA if kind == _SCHEMAS else _DATA
                stack.extend((item, depth + 1, member) for item in value)
            else:
                self._scalar(value)

    @staticmethod
    def _kind_of(key: str, item: Any, kind: int) -> int:
        if kind in (_SCHEMAS, _PATTERNS):
            return _SCHEMA  # a member of `properties`, `$defs`, ...
        if kind != _SCHEMA:
            return _DATA
        if key in _SINGLE and isinstance(item, dict):
            return _SCHEMA
        if key in _LISTS and isinstance(item, list):
            return _SCHEMAS
        if key == "patternProperties":
            return _PATTERNS
        if key in _MAPS or key in _DEFINITIONS:
            return _SCHEMAS
        return _DATA

    def _schema_keywords(self, node: dict[str, Any]) -> None:
        bounds = self.bounds
        enum = node.get("enum")
        if isinstance(enum, list) and len(enum) > bounds.max_enum:
            raise refusal(TOO_LARGE, f"an enum has more than {bounds.max_enum} members", "max_enum", bounds.max_enum)
        properties = node.get("properties")
        if isinstance(properties, dict):
            self.properties += len(properties)
            if self.properties > bounds.max_properties:
                message = f"the schema declares more than {bounds.max_properties} properties"
                raise refusal(TOO_LARGE, message, "max_properties", bounds.max_properties)
        for key in _COUNTS.intersection(node):
            count = node[key]
            if isinstance(count, int | float) and not isinstance(count, bool) and count > bounds.max_repeat:
                raise unrunnable(bounds)
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            self._pattern(pattern)

    def _key(self, key: Any, kind: int) -> None:
        if not isinstance(key, str):
            raise SchemaShapeError(NOT_JSON, "a JSON object's keys are strings", {"reason": "not_json"})
        self._string(key)
        self._add(1)  # the colon
        if kind == _PATTERNS:
            self._pattern(key)

    def _pattern(self, pattern: str) -> None:
        if len(pattern) <= self.bounds.max_string_chars and pattern_repeat(pattern) > self.bounds.max_repeat:
            raise unrunnable(self.bounds)

    def _scalar(self, value: Any) -> None:
        if isinstance(value, str):
            self._string(value)
        elif value is None or isinstance(value, bool):
            self._add(4 if value in (None, True) else 5)
        elif isinstance(value, int):
            self._add(len(str(value)) if abs(value) < 10**18 else value.bit_length() * 30103 // 100000 + 2)
        elif isinstance(value, float) and math.isfinite(value):
            self._add(len(repr(value)))
        else:
            raise SchemaShapeError(NOT_JSON, "the schema holds a value JSON cannot", {"reason": "not_json"})

    def _string(self, text: str) -> None:
        bounds = self.bounds
        if len(text) > bounds.max_string_chars:
            message = f"a string in the schema is longer than {bounds.max_string_chars} characters"
            raise refusal(TOO_LARGE, message, "max_string_chars", bounds.max_string_chars)
        quoted: str = _QUOTE(text)
        self._add(len(quoted) if quoted.isascii() else len(quoted.encode("utf-8", "surrogatepass")))

    def _add(self, size: int) -> None:
        self.bytes += size
        if self.bytes > self.bounds.max_bytes:
            message = f"the schema is larger than {self.bounds.max_bytes} bytes as compact JSON"
            raise refusal(TOO_LARGE, message, "max_bytes", self.bounds.max_bytes)


def too_deep(bounds: SchemaBounds) -> SchemaShapeError:
    """The refusal of a schema nested deeper than `bounds.max_depth`."""
    message = f"the schema nests deeper than {bounds.max_depth} levels"
    return refusal(TOO_DEEP, message, "max_depth", bounds.max_depth)


def unrunnable(bounds: SchemaBounds) -> SchemaShapeError:
    """The refusal of a count (a keyword's or a pattern's) above `bounds.max_repeat`."""
    message = f"the schema asks for a count above {bounds.max_repeat}: no generation could honour it in bounded time"
    return refusal(UNRUNNABLE, message, "max_repeat", bounds.max_repeat)


class _Expanded:
    """The schema with every local `$ref` followed: counted, never built."""

    def __init__(self, root: dict[str, Any], bounds: SchemaBounds) -> None:
        self.root = root
        self.bounds = bounds
        self.memo: dict[str, tuple[int, int]] = {}  # $ref -> (expanded nodes, depth below)
        self.open: set[str] = set()

    def size(self, node: Any, depth: int) -> tuple[int, int]:
        """(expanded nodes, depth) of the subschema `node` found at `depth`."""
        if depth > self.bounds.max_depth:
            raise too_deep(self.bounds)
        if not isinstance(node, dict):
            return 1, 1
        ref = node.get("$ref")
        total, below = 1, 0
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
            n, d = self._ref(ref, depth)
            total, below = total + n, max(below, d)
        for child in subschemas(node):
            n, d = self.size(child, depth + 1)
            total, below = total + n, max(below, d)
            if total > self.bounds.max_nodes:
                limit = self.bounds.max_nodes
                message = f"the schema expands to more than {limit} subschemas once its $refs are followed"
                raise refusal(TOO_LARGE, message, "max_nodes", limit)
        return total, below + 1

    def _ref(self, ref: str, depth: int) -> tuple[int, int]:
        if ref in self.open:
            raise SchemaShapeError(RECURSIVE, "the schema refers to itself ($ref cycle)", {"reason": "ref_cycle"})
        if ref not in self.memo:
            target = self._resolve(ref)
            self.open.add(ref)
            try:
                self.memo[ref] = self.size(target, depth + 1)
            finally:
                self.open.discard(ref)
        n, d = self.memo[ref]
        if depth + d > self.bounds.max_depth:  # reached again from deeper than where it was first counted
            raise too_deep(self.bounds)
        return n, d

    def _resolve(self, ref: str) -> Any:
        """The local target of `#/a/b`; an unresolvable one counts as one node (validation refuses it)."""
        node: Any = self.root
        if ref == "#":
            return node
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                return True
        return node

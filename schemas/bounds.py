"""How big a tenant's schema becomes once its `$ref`s are followed: counted, never built.

The prompt renderer and the grammar compilers expand every `$ref` in place, so a 2 KB schema whose
`$defs` fan out (d0 -> {l: d1, r: d1}, 30 levels) is 2^30 nodes to them and exhausts the process, and a
`$ref` that reaches itself never ends. This walk counts the expanded tree with one memo per `$ref`
target (linear in the schema's size), refuses a `$ref` cycle, and stops at a depth well inside Python's
recursion limit, before any third-party code sees the schema. Admission runs it before registering,
and a job runs it again for schemas registered before the bounds existed.
"""

from __future__ import annotations

from typing import Any

from schemas.errors import InvalidSchemaError

MAX_EXPANDED_NODES = 5_000
"""Subschemas after every `$ref` is followed; the built-in schemas expand to under 100."""
MAX_DEPTH = 32
"""Nesting of subschemas after `$ref`s are followed (deep enough for any record a person reviews)."""

_SINGLE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAPS = ("properties", "patternProperties", "dependentSchemas")


class SchemaShapeError(InvalidSchemaError):
    """A schema too large, too deep or recursive once expanded; `code` says which (HTTP 422). Its details
    name our limit only: nothing of the tenant's schema (not even a property name) is echoed."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def check_shape(schema: dict[str, Any]) -> None:
    """Raise `SchemaShapeError` (`schema_too_large`, `schema_too_deep`, `schema_recursive`) unless the
    schema, expanded, stays within `MAX_EXPANDED_NODES` and `MAX_DEPTH`."""
    _Walk(schema).size(schema, 1)


def _too_deep() -> SchemaShapeError:
    return SchemaShapeError("schema_too_deep", f"the schema nests deeper than {MAX_DEPTH} levels", {"limit": MAX_DEPTH})


class _Walk:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.memo: dict[str, tuple[int, int]] = {}  # $ref -> (expanded nodes, depth below)
        self.open: set[str] = set()

    def size(self, node: Any, depth: int) -> tuple[int, int]:
        """(expanded nodes, depth) of the subschema `node` found at `depth`."""
        if depth > MAX_DEPTH:
            raise _too_deep()
        if not isinstance(node, dict):
            return 1, 1
        ref = node.get("$ref")
        total, below = 1, 0
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
            n, d = self._ref(ref, depth)
            total, below = total + n, max(below, d)
        for child in self._children(node):
            n, d = self.size(child, depth + 1)
            total, below = total + n, max(below, d)
            if total > MAX_EXPANDED_NODES:
                raise SchemaShapeError(
                    "schema_too_large",
                    f"the schema expands to more than {MAX_EXPANDED_NODES} subschemas once its $refs are followed",
                    {"limit": MAX_EXPANDED_NODES},
                )
        return total, below + 1

    def _ref(self, ref: str, depth: int) -> tuple[int, int]:
        if ref in self.open:
            raise SchemaShapeError("schema_recursive", "the schema refers to itself ($ref cycle)", {})
        if ref not in self.memo:
            target = self._resolve(ref)
            self.open.add(ref)
            try:
                self.memo[ref] = self.size(target, depth + 1)
            finally:
                self.open.discard(ref)
        n, d = self.memo[ref]
        if depth + d > MAX_DEPTH:  # reached again from deeper than where it was first counted
            raise _too_deep()
        return n, d

    def _resolve(self, ref: str) -> Any:
        """The local target of `#/a/b`; an unresolvable one counts as one node (validation refuses it)."""
        node: Any = self.root
        if ref == "#":
            return node
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return True
            node = node[part]
        return node

    @staticmethod
    def _children(node: dict[str, Any]) -> list[Any]:
        out: list[Any] = [node[key] for key in _SINGLE if isinstance(node.get(key), dict)]
        for key in _LISTS:
            if isinstance(node.get(key), list):
                out += node[key]
        for key in _MAPS:
            if isinstance(node.get(key), dict):
                out += node[key].values()
        return out

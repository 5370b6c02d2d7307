"""One exception root for `schemas`."""

from __future__ import annotations


class SchemaError(Exception):
    """Root of schema errors; `code` is machine-readable."""

    code = "schema_error"


class UnknownSchemaError(SchemaError, LookupError):
    """A schema name or version that the registry does not hold (bad input)."""

    code = "unknown_schema"


class InvalidSchemaError(SchemaError, ValueError):
    """A user-supplied JSON Schema that is malformed or unsupported (bad input)."""

    code = "invalid_schema"

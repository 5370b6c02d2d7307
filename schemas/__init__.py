"""Extraction contracts: built-in Pydantic schemas and the registry that names and versions them."""

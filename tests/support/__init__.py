"""Helpers shared by test packages: a deterministic engine and real servers on loopback ports."""

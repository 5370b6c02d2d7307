"""Benchmarks and offline checks (decode speed, end-to-end speed, OCR speed, schema-check): never imported by the
runtime; run them as `python -m bench.<name>` (schema-check also as `abstractor schema-check`)."""

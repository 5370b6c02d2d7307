"""Batch extraction over an archive: walk and hash it (`walk`), run or wait (`driver`), export (`export`).

The batch manifest lives in the store (`batches`, `batch_items`): one item per distinct sha256, each
pointing at its job. Jobs are keyed by (tenant, document, schema, model), so a restarted batch finds
every finished document's job again and re-extracts nothing; only documents whose job never finished
run. Submitting an item's job and recovering an interrupted run are `service.jobs`'s; this package
walks, drives and exports. The API imports `export` and `progress` only.
"""

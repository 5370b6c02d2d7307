"""Batch extraction over an archive: walk and hash it (`walk`), follow it (`progress`), export it (`export`).

The batch manifest lives in the store (`batches`, `batch_items`): one item per distinct sha256, each
pointing at its job. Jobs are keyed by (tenant, document, schema, model), so a restarted batch finds
every finished document's job again and re-extracts nothing; only documents whose job never finished
run. Submitting an item's job and recovering an interrupted run are `service.jobs`'s; driving a batch
from the command line (`abstractor batch`) is a process, `service.processes.batch`. The API imports
`export` and `progress`.
"""

"""The API's use cases, one module per resource: each owns one transaction and writes its audit event inside it.

Routers stay thin and call these; persistence goes through `service.store.repositories`, and what makes
a job (its schema, its key, its submission) through `service.jobs`. A refused action (unknown or foreign
id, bad input) is audited too, in its own transaction, and then raised. Audit details hold ids, codes
and counts only.
"""

"""The service's root for errors outside the store and the API: batches that cannot start, refused webhooks.

Both are bad input (a missing folder, a URL we may not call): the API maps this root to 422, the CLI
prints its `to_dict()`. The store has its own root (`service.store.errors`), the API its own
(`service.api.errors.ApiError`); all three share the house's one base, `workers.errors.AbstractorError`.
"""

from __future__ import annotations

from workers.errors import AbstractorError


class ServiceError(AbstractorError):
    """Root of the errors `service.batches` and `service.webhooks` raise."""

    code = "service_error"


class BatchError(ServiceError):
    """A batch that cannot start or export: nothing to read, a file over the limit, an unknown format."""

    code = "batch_error"

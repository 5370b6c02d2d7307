"""The REST API: FastAPI app, routers per resource, API-key tenancy, one error model, audit on every read.

app = create_app(settings)    # database migrated beforehand (`abstractor migrate`)
"""

from service.api.app import create_app

__all__ = ["create_app"]

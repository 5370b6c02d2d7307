"""The durable side and the front door: settings, store, API and the `abstractor` CLI."""

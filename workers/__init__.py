"""The extraction engine: document reading, model engines, the pure pipeline, and (later) the queue face."""

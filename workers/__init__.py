"""The extraction engine: document reading, model engines, the pure pipeline, and its queue face (jobs, tasks)."""

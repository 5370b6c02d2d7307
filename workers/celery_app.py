"""The Celery face of the workers: one app, Redis as broker, Postgres (not Celery) as the job's memory.

Messages are JSON carrying a job id only (see `workers.tasks.ExtractMessage`); no result backend is
configured and results are ignored, because the job row, its result and its audit trail live in the
store. Delivery is at-least-once: a task is acknowledged after it ran (`acks_late`), a message whose
worker process died is handed back (`reject_on_worker_lost`), and Redis hands an unacknowledged message
to another worker after `visibility_timeout`, which must outlast the hard time limit or a task still
running would be delivered twice. The store's guarded state transitions make a second delivery harmless.

`configure` is called once per process, before a worker starts or a relay publishes, with plain values:
the workers package never reads the service's settings itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery

from workers.errors import ConfigError

QUEUE = "extractions"
"""The one queue the workers consume."""

EXTRACT_TASK = "abstractor.extract"
"""The task's registered name; the relay publishes by this name, so renaming a module breaks nothing."""


@dataclass(frozen=True)
class CelerySpec:
    """What a deployment decides about the queue; built from the service's settings by its caller."""

    broker_url: str
    soft_time_limit_s: float = 1800.0
    time_limit_s: float = 1860.0
    visibility_timeout_s: float = 2400.0
    health_check_interval_s: float = 10.0
    socket_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.broker_url.startswith(("redis://", "rediss://", "redis+socket://")):
            raise ConfigError("the broker must be Redis (redis://, rediss:// or redis+socket://)", code="bad_broker")
        if not 0 < self.soft_time_limit_s < self.time_limit_s:
            raise ConfigError("the soft time limit must be positive and below the hard one", code="bad_time_limits")
        if self.visibility_timeout_s <= self.time_limit_s:
            # Otherwise Redis redelivers a message whose task is still within its time limit.
            raise ConfigError("the broker visibility timeout must exceed the hard time limit", code="bad_time_limits")


# The settings that never vary between deployments; `configure` adds the broker and the limits.
BASE_CONFIG: dict[str, Any] = {
    "task_serializer": "json",
    "accept_content": ["json"],
    "result_accept_content": ["json"],
    "result_backend": None,
    "task_ignore_result": True,
    "task_store_errors_even_if_ignored": False,
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    # A worker holds only the message it runs: a killed worker strands one job, not a prefetched batch.
    "worker_prefetch_multiplier": 1,
    "task_default_queue": QUEUE,
    "broker_connection_retry_on_startup": True,
    "broker_connection_max_retries": None,
    # The Redis message of a task cut off by a lost connection comes back anyway (visibility timeout);
    # letting the task finish saves a run, and the store's guarded transition absorbs the redelivery.
    "worker_cancel_long_running_tasks_on_connection_loss": False,
    "worker_hijack_root_logger": False,
    "worker_send_task_events": False,
    "task_send_sent_event": False,
    "enable_utc": True,
}

app = Celery("abstractor", include=["workers.tasks"], set_as_current=False)
app.conf.update(BASE_CONFIG)


def spec_config(spec: CelerySpec) -> dict[str, Any]:
    """The broker, time limits and connection health settings of a deployment."""
    return {
        "broker_url": spec.broker_url,
        "task_soft_time_limit": spec.soft_time_limit_s,
        "task_time_limit": spec.time_limit_s,
        "broker_transport_options": {
            "visibility_timeout": spec.visibility_timeout_s,
            # Sweep for messages whose worker died unacknowledged a few times per visibility timeout
            # (kombu's default sweep is ~100 s, whatever the timeout).
            "unacked_restore_interval": min(60, max(1, int(spec.visibility_timeout_s / 4))),
            "unacked_restore_throttle": 1,
            # redis-py PINGs a connection idle this long before using it, so a dead link is found early.
            "health_check_interval": int(spec.health_check_interval_s),
            "socket_timeout": spec.socket_timeout_s,
            "socket_connect_timeout": spec.socket_timeout_s,
            "socket_keepalive": True,
            "retry_on_timeout": True,
        },
        "broker_connection_timeout": spec.socket_timeout_s,
    }


def configure(spec: CelerySpec) -> Celery:
    """Point the workers' app at the broker with the deployment's limits; returns the app."""
    app.conf.update(spec_config(spec))
    return app


def publisher_app(spec: CelerySpec) -> Celery:
    """An app of its own for publishing by task name (the relay), failing fast when Redis is down.

    Without the retry bounds kombu retries a publish to an unreachable broker forever, stalling the
    relay; failing fast lets it release its lease and try again on its next poll.
    """
    publisher = Celery("abstractor-publisher", set_as_current=False)
    config = {**BASE_CONFIG, **spec_config(spec)}
    config["broker_transport_options"] = {
        **config["broker_transport_options"],
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
    }
    publisher.conf.update(config)
    return publisher

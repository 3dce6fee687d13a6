"""Pub/sub for live execution events: in-process in embedded mode, Redis Pub/Sub later."""

from linkflow.bus.local import LocalBus, Subscription

__all__ = ["LocalBus", "Subscription"]

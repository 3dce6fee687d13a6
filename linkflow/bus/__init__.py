"""Pub/sub for live execution events: in-process in embedded mode, Redis Pub/Sub later."""

from linkflow.bus.local import LocalBus
from linkflow.bus.protocol import Bus, Subscription

__all__ = ["Bus", "LocalBus", "Subscription"]

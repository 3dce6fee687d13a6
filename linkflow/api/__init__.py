"""The HTTP edge: the FastAPI app factory, one router per resource, errors, middleware.

`create_app(container)` builds an app from a `Container` (made by
`linkflow.wiring.build_container`); nothing here reads the environment or keeps
global state. Endpoints call `linkflow.services` and render their results.
"""

from __future__ import annotations

from linkflow.api.app import create_app
from linkflow.api.container import Container

__all__ = ["Container", "create_app"]

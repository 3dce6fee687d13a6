"""The HTTP edge: the FastAPI app factory, one router per resource, errors, middleware.

`create_app(container)` builds an app from a `Container` (see
`linkflow.api.container`); nothing here reads the environment or keeps
global state. Endpoints call `linkflow.services` and render their results.
"""

from __future__ import annotations

from linkflow.api.app import create_app
from linkflow.api.container import Container, build_container

__all__ = ["Container", "build_container", "create_app"]

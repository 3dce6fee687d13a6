"""Loopback fakes of SaaS APIs that cannot run here, each speaking its service's real HTTP
API for the operations LinkFlow's integrations use (paths, methods, auth headers,
pagination cursors, error bodies and rate-limit answers as the service documents them).

Each module has a `Fake<Service>` holding the service's state and a context manager that
serves it on 127.0.0.1 (`tests._http_server`), recording every request it receives.
"""

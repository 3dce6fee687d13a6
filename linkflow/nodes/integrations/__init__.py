"""Integrations: one module per service, holding its node types and credential types.

The registry lists this package and registers every public module's `NODES`
and `CREDENTIALS`, so an integration is added by adding its module and
nothing else. Modules whose names start with `_` are helpers, not listed.
"""

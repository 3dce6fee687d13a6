"""Cryptography and access policy: passwords, tokens, API keys, TOTP, the secret box, RBAC.

Pure functions and small value objects over the standard library and the
crypto packages; nothing here touches the database, HTTP or settings (values
are handed in). Import the modules themselves (`linkflow.security.passwords`,
...): this package re-exports nothing, so importing one part never pulls in
the others.
"""

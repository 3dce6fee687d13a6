"""The scrubbing of credential values out of node errors (issue 13)."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

from linkflow.nodes.registry import default_registry
from linkflow.services._secret_scrubber import REDACTED, SecretValues

TYPES = default_registry(plugins=False).credential_types


class TestSecretValues:
    def test_secret_fields_and_their_encodings_are_replaced(self) -> None:
        """The value, URL-encoded (both ways) and base64: each becomes `[redacted]`."""
        secrets = SecretValues(TYPES)
        value = "s3cret/with+odd chars"
        secrets.add("api_key", {"value": value, "name": "X-API-Key", "in": "header"})
        text = " | ".join([value, quote(value, safe=""), quote_plus(value),
                           base64.b64encode(value.encode()).decode()])  # fmt: skip
        assert secrets.scrub(text) == " | ".join([REDACTED] * 4)

    def test_non_secret_fields_stay_readable(self) -> None:
        """A header name or user name is not a secret: the message keeps it."""
        secrets = SecretValues(TYPES)
        secrets.add("api_key", {"value": "k3y-value", "name": "X-API-Key"})
        assert secrets.scrub("header X-API-Key: k3y-value") == f"header X-API-Key: {REDACTED}"

    def test_basic_auth_header_is_replaced(self) -> None:
        """base64("user:password"), as an Authorization header carries it, is replaced."""
        secrets = SecretValues(TYPES)
        secrets.add("basic", {"username": "ada", "password": "pa55word"})
        header = "Basic " + base64.b64encode(b"ada:pa55word").decode()
        assert secrets.scrub(f"echo: {header}") == f"echo: Basic {REDACTED}"

    def test_unknown_types_have_every_string_field_scrubbed(self) -> None:
        """A type this server does not describe: every string value counts as secret."""
        secrets = SecretValues(TYPES)
        secrets.add("plugin_type", {"anything": "opaque-value", "port": 5432})
        assert secrets.scrub("got opaque-value on 5432") == f"got {REDACTED} on 5432"

    def test_very_short_values_and_empty_registries_change_nothing(self) -> None:
        """A 3-character secret would redact every "abc" of a message; nothing is registered."""
        secrets = SecretValues(TYPES)
        assert secrets.scrub("nothing to hide") == "nothing to hide"
        secrets.add("bearer", {"token": "abc"})
        assert secrets.scrub("abc abc") == "abc abc"

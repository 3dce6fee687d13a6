"""The webhook trigger passes the request item through and checks its settings."""

from __future__ import annotations

from tests.unit.nodes._support import NODE, document, node, problems, run_trigger

REQUEST = {
    "method": "POST",
    "path": "orders",
    "headers": {"content-type": "application/json"},
    "query": {"debug": "1"},
    "body": {"id": 7},
}


def _problems(parameters: dict[str, object]) -> list[str]:
    return problems(document([node(NODE, "webhook", parameters)], []))


class TestWebhookRun:
    async def test_emits_the_request_built_by_the_webhook_layer(self) -> None:
        """A request object from the webhook layer is the one item, unchanged."""
        result = await run_trigger("webhook", {"path": "orders"}, REQUEST)
        assert result.status == "completed"
        assert result.output_of(NODE) == [REQUEST]

    async def test_any_other_input_becomes_the_body_of_a_request(self) -> None:
        """A test run with a list or scalar input wraps it as the body."""
        result = await run_trigger("webhook", {"path": "orders", "method": "PUT"}, [1, 2])
        assert result.output_of(NODE) == [
            {"method": "PUT", "path": "orders", "headers": {}, "query": {}, "body": [1, 2]}
        ]

    async def test_the_wrapped_request_uses_the_default_method(self) -> None:
        """Without `method`, the wrapped request says POST."""
        result = await run_trigger("webhook", {}, None)
        assert result.output_of(NODE) == [
            {"method": "POST", "path": "", "headers": {}, "query": {}, "body": None}
        ]


class TestWebhookCheck:
    def test_all_parameters_set_are_valid(self) -> None:
        """A fully specified webhook has no problems."""
        parameters = {
            "path": "hooks/orders:id", "method": "PATCH", "response_mode": "respond_node",
            "secret": "s3cret", "ip_allowlist": ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"],
            "max_body_bytes": 2048,
        }  # fmt: skip
        assert _problems(parameters) == []

    def test_an_entry_of_the_ip_allowlist_that_is_no_address_is_refused(self) -> None:
        """Each bad entry is named with its index."""
        found = _problems({"ip_allowlist": ["10.0.0.1", "10.0.0.300", "nope"]})
        assert len(found) == 2
        assert "ip_allowlist[1]" in found[0]
        assert "10.0.0.300" in found[0]
        assert "ip_allowlist[2]" in found[1]

    def test_an_unknown_method_is_refused(self) -> None:
        """The method must be one of the HTTP methods listed in the schema."""
        assert _problems({"method": "FETCH"}) != []

    def test_a_response_mode_outside_the_three_is_refused(self) -> None:
        """Only immediately, last_node and respond_node exist."""
        assert _problems({"response_mode": "later"}) != []

    def test_a_path_with_spaces_or_queries_is_refused(self) -> None:
        """The path holds only URL-safe characters."""
        assert any("path" in p for p in _problems({"path": "my hook?x=1"}))

    def test_a_body_limit_below_one_byte_is_refused(self) -> None:
        """max_body_bytes is at least 1."""
        assert _problems({"max_body_bytes": 0}) != []

    def test_a_rate_limit_is_a_rate_or_unlimited(self) -> None:
        """`rate_limit` takes `N/unit`, `N/M units` or `unlimited`; anything else is named."""
        for rate in ("100/second", "6000/minute", "5/2 minutes", "1/day", "unlimited", None):
            assert _problems({"rate_limit": rate}) == [], rate
        for rate in ("fast", "0/second", "100/week", "100"):
            found = _problems({"rate_limit": rate})
            assert any("rate_limit" in p and rate in p for p in found), (rate, found)

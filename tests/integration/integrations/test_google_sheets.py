"""The google_sheets node against a loopback fake of the Sheets API v4
(tests/_saas/google_sheets.py), through the real SSRF-guarded client (loopback allowed)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from linkflow.nodes.integrations.google_sheets import GoogleSheets
from linkflow.nodes.sdk import NodeError, NodeResult, OnError
from linkflow.nodes.testing import FakeContext, items, run_node
from linkflow.security.ssrf import guarded_client
from tests._oauth_provider import JWT_BEARER, FakeOAuthProvider, fake_oauth_provider
from tests._saas._base import body_json
from tests._saas._engine import NODE, events, run_in_engine
from tests._saas.google_sheets import TOKEN, FakeSheets, fake_sheets, rate_limited
from tests.unit.engine._support import StepClock

BOOK = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
PEOPLE = [["name", "email", "team"], ["Ada", "ada@example.com", "core"],
          ["Grace", "grace@example.com"], ["Linus", "linus@example.com", "core"]]  # fmt: skip


@pytest.fixture
def sheets() -> Iterator[FakeSheets]:
    with fake_sheets() as fake:
        fake.add_spreadsheet(BOOK, Sheet1=PEOPLE, **{"Q4 plan": [["task", "owner"]]})
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def credential(token: str = TOKEN) -> dict[str, Any]:
    return {"type": "google_oauth2", "access_token": token}


async def run(
    sheets: FakeSheets, http: httpx.AsyncClient, parameters: dict[str, Any],
    *jsons: dict[str, Any], token: str = TOKEN, on_error: OnError = OnError.STOP,
) -> NodeResult:  # fmt: skip
    full = {"spreadsheet_id": BOOK, "base_url": sheets.url, **parameters}
    ctx = FakeContext(items=items(*(jsons or ({},))), parameters=full,
                      credentials={"google": credential(token)}, http=http,
                      on_error=on_error)  # fmt: skip
    return await run_node(GoogleSheets, ctx)


def out(result: NodeResult) -> list[dict[str, Any]]:
    return [item.json for item in result.outputs["main"]]


async def failure(sheets: FakeSheets, http: httpx.AsyncClient, parameters: dict[str, Any],
                  *jsons: dict[str, Any], **kwargs: Any) -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(sheets, http, parameters, *jsons, **kwargs)
    return caught.value


class TestRead:
    async def test_rows_come_out_keyed_by_the_header_with_their_row_number(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        """values.get of the whole sheet with the bearer token; a trailing empty cell that
        Sheets leaves out reads as ""."""
        rows = out(await run(sheets, http, {"operation": "read"}))
        assert rows == [
            {"name": "Ada", "email": "ada@example.com", "team": "core", "row_number": 2},
            {"name": "Grace", "email": "grace@example.com", "team": "", "row_number": 3},
            {"name": "Linus", "email": "linus@example.com", "team": "core", "row_number": 4},
        ]
        [call] = sheets.requests
        assert call.method == "GET"
        assert unquote(call.path) == f"/v4/spreadsheets/{BOOK}/values/'Sheet1'"
        assert call.headers["authorization"] == f"Bearer {TOKEN}"
        assert call.query["valueRenderOption"] == ["FORMATTED_VALUE"]

    async def test_a_range_starts_the_row_numbers_where_it_starts(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        """Without a header row, keys are col_1, col_2...; row numbers are the sheet's."""
        rows = out(await run(sheets, http, {"operation": "read", "range": "A3:B4",
                                            "header_row": False}))  # fmt: skip
        assert rows == [
            {"col_1": "Grace", "col_2": "grace@example.com", "row_number": 3},
            {"col_1": "Linus", "col_2": "linus@example.com", "row_number": 4},
        ]
        assert unquote(sheets.requests[0].path).endswith("/values/'Sheet1'!A3:B4")

    async def test_a_sheet_whose_title_needs_quotes_is_read(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        assert out(await run(sheets, http, {"operation": "read", "sheet": "Q4 plan"})) == []


class TestAppend:
    async def test_each_item_is_appended_under_the_header_read_once(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        """Fields go under their columns (a missing one is empty); the header is read once
        for all items; each item comes out with the row it landed on."""
        result = await run(sheets, http, {"operation": "append"},
                           {"team": "ops", "name": "Ken"}, {"name": "Barbara", "email": "b@x"})
        assert len(sheets.calls("!1:1")) == 1
        appends = sheets.calls(":append")
        assert len(appends) == 2
        assert appends[0].query["valueInputOption"] == ["USER_ENTERED"]
        assert appends[0].query["insertDataOption"] == ["INSERT_ROWS"]
        assert body_json(appends[0]) == {"majorDimension": "ROWS",
                                         "values": [["Ken", "", "ops"]]}  # fmt: skip
        assert sheets.rows(BOOK, "Sheet1")[4:] == [["Ken", "", "ops"], ["Barbara", "b@x", ""]]
        assert [(row["name"], row["row_number"]) for row in out(result)] == [
            ("Ken", 5), ("Barbara", 6)]

    async def test_an_empty_sheet_gets_the_first_items_keys_as_its_header(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        sheets.add_sheet(BOOK, "Empty", [])
        await run(sheets, http, {"operation": "append", "sheet": "Empty"},
                  {"sku": "A-1", "qty": 3}, {"sku": "B-2", "qty": {"boxes": 2}})
        assert sheets.rows(BOOK, "Empty") == [["sku", "qty"], ["A-1", 3],
                                              ["B-2", '{"boxes":2}']]  # fmt: skip

    async def test_values_are_appended_as_they_are(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        await run(sheets, http, {"operation": "append", "values": ["=1+1", True, None],
                                 "value_input": "RAW"})  # fmt: skip
        assert sheets.rows(BOOK, "Sheet1")[-1] == ["=1+1", True, ""]
        assert sheets.calls(":append")[0].query["valueInputOption"] == ["RAW"]
        assert sheets.calls("!1:1") == []

    async def test_a_field_the_header_lacks_is_refused_and_nothing_is_written(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        error = await failure(sheets, http, {"operation": "append"}, {"name": "X", "phone": "1"})
        assert error.message == "google_sheets append: the sheet's header has no column 'phone'"
        assert sheets.calls(":append") == []
        assert len(sheets.rows(BOOK, "Sheet1")) == 4


class TestUpdateAndLookup:
    async def test_rows_matching_a_column_are_updated_in_one_batch(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        result = await run(sheets, http, {"operation": "update", "match_column": "team",
                                          "match_value": "core", "fields": {"team": "platform"}})
        [batch] = sheets.calls("values:batchUpdate")
        assert body_json(batch) == {"valueInputOption": "USER_ENTERED", "data": [
            {"range": "'Sheet1'!A2", "values": [["Ada", "ada@example.com", "platform"]]},
            {"range": "'Sheet1'!A4", "values": [["Linus", "linus@example.com", "platform"]]},
        ]}  # fmt: skip
        assert [row[2:] for row in sheets.rows(BOOK, "Sheet1")[1:]] == [["platform"], [],
                                                                         ["platform"]]
        assert [(row["name"], row["row_number"]) for row in out(result)] == [("Ada", 2),
                                                                             ("Linus", 4)]

    async def test_a_row_is_updated_by_number_with_the_items_fields(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        [row] = out(await run(sheets, http, {"operation": "update", "row_number": 3},
                              {"team": "research", "row_number": 3}))  # fmt: skip
        assert row == {"name": "Grace", "email": "grace@example.com", "team": "research",
                       "row_number": 3}  # fmt: skip
        assert sheets.rows(BOOK, "Sheet1")[2] == ["Grace", "grace@example.com", "research"]

    async def test_updating_a_row_that_is_not_there_fails_naming_it(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        error = await failure(sheets, http, {"operation": "update", "row_number": 40},
                              {"team": "x"})
        assert error.message == "google_sheets update: the sheet has no row 40"
        assert sheets.calls("values:batchUpdate") == []

    async def test_lookup_finds_every_matching_row_or_the_first(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        lookup = {"operation": "lookup", "lookup_column": "team", "lookup_value": "core"}
        assert [r["name"] for r in out(await run(sheets, http, lookup))] == ["Ada", "Linus"]
        first = out(await run(sheets, http, {**lookup, "first_match_only": True}))
        assert [r["name"] for r in first] == ["Ada"]
        none = out(await run(sheets, http, {**lookup, "lookup_value": "sales"}))
        assert none == []


class TestCreateSheet:
    async def test_a_sheet_is_added_and_its_properties_come_out(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        [created] = out(await run(sheets, http, {"operation": "create_sheet",
                                                 "title": "Invoices"}))  # fmt: skip
        assert body_json(sheets.calls(f"{BOOK}:batchUpdate")[0]) == {
            "requests": [{"addSheet": {"properties": {"title": "Invoices"}}}]}
        assert created["title"] == "Invoices"
        assert created["sheetType"] == "GRID"
        assert "Invoices" in sheets.spreadsheets[BOOK]

    async def test_a_taken_title_fails_with_googles_message(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        error = await failure(sheets, http, {"operation": "create_sheet", "title": "Sheet1"})
        assert error.message.startswith("google_sheets create_sheet: refused (HTTP 400: Invalid "
                                        'requests[0].addSheet: A sheet with the name "Sheet1"')
        assert error.retryable is False


class TestFailures:
    @pytest.mark.parametrize(
        ("parameters", "problem"),
        [
            ({"operation": "lookup", "lookup_column": "team"},
             "lookup_value is required for lookup"),
            ({"operation": "update"}, "update needs row_number, or match_column and match_value"),
            ({"operation": "create_sheet"}, "title is required for create_sheet"),
        ],
    )
    async def test_missing_parameters_are_refused_before_any_call(
        self, sheets: FakeSheets, http: httpx.AsyncClient, parameters: dict[str, Any],
        problem: str,
    ) -> None:  # fmt: skip
        with pytest.raises(ValueError, match=problem):
            await run(sheets, http, parameters)
        assert sheets.requests == []

    async def test_an_unknown_spreadsheet_is_not_found(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        error = await failure(sheets, http, {"operation": "read", "spreadsheet_id": "nope"})
        assert error.message == ("google_sheets read: not found (HTTP 404: Requested entity "
                                 "was not found.)")  # fmt: skip
        assert error.retryable is False

    async def test_an_unknown_sheet_is_googles_parse_error(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        error = await failure(sheets, http, {"operation": "read", "sheet": "Nope"})
        assert error.message == ("google_sheets read: refused (HTTP 400: Unable to parse "
                                 "range: 'Nope')")  # fmt: skip

    async def test_a_refused_token_says_so_without_showing_it(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        error = await failure(sheets, http, {"operation": "read"}, token="ya29.stale-token")
        assert error.message.startswith("google_sheets read: the credential was refused (HTTP "
                                        "401: Request had invalid authentication credentials.")
        assert "ya29.stale-token" not in error.message

    async def test_a_credential_without_an_access_token_asks_to_connect_it(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        error = await failure(sheets, http, {"operation": "read"}, token="")
        assert "the Google credential is not connected" in error.message
        assert sheets.requests == []

    async def test_a_429_is_retryable_after_googles_retry_delay(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        sheets.fail_next(rate_limited(7))
        error = await failure(sheets, http, {"operation": "append", "values": ["x"]})
        assert error.message == "google_sheets append: rate limited (HTTP 429); retry after 7 s"
        assert (error.retryable, error.retry_after_s) == (True, 7.0)

    async def test_a_failed_item_goes_to_the_error_output_and_the_others_carry_on(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        result = await run(sheets, http, {"operation": "append"}, {"name": "Ok"},
                           {"nickname": "bad"}, on_error=OnError.OUTPUT)  # fmt: skip
        assert [item.json["name"] for item in result.outputs["main"]] == ["Ok"]
        [failed] = result.outputs["error"]
        assert "no column 'nickname'" in failed.json["error"]["message"]

    async def test_the_engine_retries_a_429_after_googles_delay_then_appends(
        self, sheets: FakeSheets, http: httpx.AsyncClient
    ) -> None:
        sheets.fail_next(rate_limited(4))
        clock = StepClock()
        result = await run_in_engine(
            http, "google_sheets",
            {"operation": "append", "spreadsheet_id": BOOK, "values": ["Retried"],
             "base_url": sheets.url},
            clock=clock, retry={"max_attempts": 3, "backoff_s": 60},
            credentials={"google": {"type": "google_oauth2", "data": {"access_token": TOKEN}}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        assert clock.slept == [4.0]
        assert [e["delay_s"] for e in events(result, "node.retrying")] == [4.0]
        assert sheets.rows(BOOK, "Sheet1")[-1] == ["Retried"]
        assert result.output_of(NODE)[0]["row_number"] == 5


class TestServiceAccount:
    @pytest.fixture
    def provider(self) -> Iterator[FakeOAuthProvider]:
        with fake_oauth_provider(expires_in=3600) as fake:
            yield fake

    @staticmethod
    def key_file(provider: FakeOAuthProvider) -> dict[str, Any]:
        """A service account's JSON key, its public half registered at the provider."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = "sheets-bot@project.iam.gserviceaccount.com"
        provider.service_accounts[email] = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()  # fmt: skip
        return {"type": "service_account", "client_email": email, "private_key": pem,
                "private_key_id": "k1", "token_uri": provider.token_url}  # fmt: skip

    async def run_as(self, sheets: FakeSheets, http: httpx.AsyncClient,
                     key: dict[str, Any] | str, **fields: Any) -> NodeResult:  # fmt: skip
        text = key if isinstance(key, str) else json.dumps(key)
        ctx = FakeContext(
            items=items({}), http=http, now=datetime.now(UTC),  # the provider checks `exp`
            parameters={"operation": "read", "spreadsheet_id": BOOK, "base_url": sheets.url},
            credentials={"google": {"type": "google_service_account",
                                    "service_account_json": text, **fields}},
        )  # fmt: skip
        return await run_node(GoogleSheets, ctx)

    async def test_a_signed_assertion_is_traded_for_the_token_the_call_carries(
        self, provider: FakeOAuthProvider, http: httpx.AsyncClient
    ) -> None:
        """RFC 7523: the JWT-bearer grant with an RS256 assertion for the Sheets scope,
        acting for `subject`; the Sheets call carries the access token it gave."""
        with fake_sheets(authorize=provider.valid) as sheets:
            sheets.add_spreadsheet(BOOK, Sheet1=PEOPLE)
            rows = out(await self.run_as(sheets, http, self.key_file(provider),
                                         subject="ada@example.com"))  # fmt: skip
            token = sheets.requests[0].headers["authorization"].removeprefix("Bearer ")
        assert [row["name"] for row in rows] == ["Ada", "Grace", "Linus"]
        [form] = provider.grants_of_type(JWT_BEARER)
        assert set(form) == {"grant_type", "assertion"}
        assert jwt.get_unverified_header(form["assertion"])["alg"] == "RS256"
        [claims] = provider.assertions
        assert claims["scope"] == "https://www.googleapis.com/auth/spreadsheets"
        assert claims["sub"] == "ada@example.com"
        assert claims["exp"] - claims["iat"] == 3600
        assert token == provider.grants[-1].access_tokens[0]

    async def test_a_key_the_provider_does_not_know_is_refused_without_showing_it(
        self, provider: FakeOAuthProvider, http: httpx.AsyncClient
    ) -> None:
        key = self.key_file(provider)
        provider.service_accounts.clear()
        with fake_sheets(authorize=provider.valid) as sheets, pytest.raises(NodeError) as caught:
            await self.run_as(sheets, http, key)
        assert caught.value.message == ("google_sheets read: Google refused the service "
                                        "account (HTTP 400: invalid_grant)")  # fmt: skip
        assert caught.value.retryable is False
        assert "PRIVATE KEY" not in caught.value.message

    async def test_a_file_that_is_not_a_key_is_refused_before_any_call(
        self, provider: FakeOAuthProvider, http: httpx.AsyncClient
    ) -> None:
        with fake_sheets() as sheets, pytest.raises(NodeError) as caught:
            await self.run_as(sheets, http, '{"client_email": "x"}')
        assert "is not a JSON key file with client_email, private_key and token_uri" in (
            caught.value.message)
        assert provider.token_requests == []

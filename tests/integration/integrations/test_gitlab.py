"""The gitlab node and credential against a loopback fake of GitLab's REST API v4
(tests/_saas/gitlab.py), through the real SSRF-guarded client (loopback allowed); the
credential's base_url is the fake's `/api/v4`, as a self-managed instance's would be."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from linkflow.nodes.integrations.gitlab import GITLAB_CREDENTIAL, GitLab
from linkflow.nodes.sdk import BinaryRef, NodeError, NodeResult
from linkflow.nodes.testing import FIXED_NOW, FakeContext, MemoryBlobStore, items, run_node
from linkflow.security.ssrf import guarded_client
from tests._saas._base import HANG, Reply, body_json
from tests._saas._engine import NODE, Checking, events, run_in_engine
from tests._saas.gitlab import PROJECT, PROJECT_ID, TOKEN, FakeGitLab, fake_gitlab, rate_limited
from tests.unit.engine._support import StepClock

ENCODED = "octo-group%2Fhello"
ISSUES = f"/projects/{ENCODED}/issues"
CREATE = {"resource": "issue", "operation": "create", "project": PROJECT,
          "title": "Nightly build failed"}  # fmt: skip


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with fake_gitlab() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def credential(gitlab: FakeGitLab, token: str = TOKEN) -> dict[str, Any]:
    return {"type": "gitlab", "token": token, "base_url": gitlab.api}


async def run(
    gitlab: FakeGitLab, http: httpx.AsyncClient, parameters: dict[str, Any], *,
    token: str = TOKEN, ctx_items: Any = None, blobs: MemoryBlobStore | None = None,
) -> NodeResult:  # fmt: skip
    ctx = FakeContext(items=ctx_items or items({}), parameters=parameters, blobs=blobs,
                      credentials={"gitlab": credential(gitlab, token)}, http=http)  # fmt: skip
    return await run_node(GitLab, ctx)


def out(result: NodeResult) -> list[dict[str, Any]]:
    return [item.json for item in result.outputs["main"]]


async def failure(gitlab: FakeGitLab, http: httpx.AsyncClient, parameters: dict[str, Any],
                  **kwargs: Any) -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(gitlab, http, parameters, **kwargs)
    assert kwargs.get("token", TOKEN) not in caught.value.message
    assert TOKEN not in caught.value.message
    return caught.value


class TestIssues:
    async def test_create_sends_the_token_header_and_the_fields(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        """The project path goes URL-encoded as one segment; labels comma-separated."""
        parameters = {**CREATE, "description": "See the log.", "labels": ["ci", "flaky"],
                      "assignee_ids": [7]}  # fmt: skip
        [issue] = out(await run(gitlab, http, parameters))
        [request] = gitlab.calls("POST", ISSUES)
        assert request.headers["private-token"] == TOKEN
        assert "authorization" not in request.headers
        assert body_json(request) == {"title": "Nightly build failed",
                                      "description": "See the log.", "labels": "ci,flaky",
                                      "assignee_ids": [7]}  # fmt: skip
        assert issue == gitlab.issues[1]
        assert (issue["iid"], issue["state"], issue["labels"]) == (1, "opened", ["ci", "flaky"])

    async def test_get_edit_and_comment_on_an_issue_by_project_id(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        await run(gitlab, http, CREATE)
        one = {"resource": "issue", "project": str(PROJECT_ID), "issue_iid": 1}
        [got] = out(await run(gitlab, http, {**one, "operation": "get"}))
        assert got["title"] == "Nightly build failed"
        assert gitlab.calls("GET", f"/projects/{PROJECT_ID}/issues/1")
        [edited] = out(await run(gitlab, http, {**one, "operation": "edit",
                                                "state_event": "close", "labels": []}))  # fmt: skip
        assert body_json(gitlab.calls("PUT", f"/projects/{PROJECT_ID}/issues/1")[0]) == {
            "state_event": "close", "labels": ""}  # fmt: skip
        assert (edited["state"], edited["labels"]) == ("closed", [])
        [note] = out(await run(gitlab, http, {**one, "operation": "comment",
                                              "body": "Fixed by !2."}))  # fmt: skip
        assert body_json(gitlab.calls("POST", f"/projects/{PROJECT_ID}/issues/1/notes")[0]) == {
            "body": "Fixed by !2."
        }
        assert (note["body"], note["noteable_iid"]) == ("Fixed by !2.", 1)
        assert gitlab.issues[1]["user_notes_count"] == 1

    async def test_an_already_encoded_project_path_is_not_encoded_twice(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        await run(gitlab, http, {**CREATE, "project": ENCODED})
        assert len(gitlab.calls("POST", ISSUES)) == 1

    async def test_gitlabs_error_shapes_are_named(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        too_long = await failure(gitlab, http, {**CREATE, "title": "x" * 300})
        assert too_long.message == (
            "gitlab issue create: refused (HTTP 400: title is too long (maximum is 255 characters))"
        )
        gitlab.fail_next(Reply.json({"error": "title is missing"}, 400))
        missing = await failure(gitlab, http, CREATE)
        assert missing.message == "gitlab issue create: refused (HTTP 400: title is missing)"
        absent = await failure(gitlab, http, {"resource": "issue", "operation": "get",
                                              "project": PROJECT, "issue_iid": 99})  # fmt: skip
        assert absent.message == "gitlab issue get: not found (HTTP 404: 404 Not found)"
        other = await failure(gitlab, http, {**CREATE, "project": "someone/else"})
        assert other.message == "gitlab issue create: not found (HTTP 404: 404 Project Not Found)"

    def test_required_parameters_are_named_when_the_workflow_is_saved(self) -> None:
        node = GitLab()
        assert node.check({"resource": "issue", "operation": "comment", "project": "1"}) == [
            "issue_iid is required for issue comment",
            "body is required for issue comment",
        ]
        assert node.check({"resource": "file", "operation": "create", "project": "1",
                           "file_path": "a"}) == [
            "branch is required for file create",
            "commit_message is required for file create",
        ]  # fmt: skip
        assert node.check({"resource": "merge_request", "operation": "get", "project": "1"}) == [
            "operation 'get' is not one of merge_request's: list"]  # fmt: skip


class TestMergeRequests:
    async def test_list_follows_the_link_header_until_the_limit(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        for number in range(250):
            gitlab.add_merge_request(f"MR {number}")
        gitlab.add_merge_request("merged", state="merged")
        parameters = {"resource": "merge_request", "operation": "list", "project": PROJECT,
                      "limit": 150}  # fmt: skip
        found = out(await run(gitlab, http, parameters))
        first, second = gitlab.calls("GET", f"/projects/{ENCODED}/merge_requests")
        assert first.query == {"state": ["opened"], "per_page": ["100"]}
        assert second.query == {"state": ["opened"], "per_page": ["100"], "page": ["2"]}
        assert second.headers["private-token"] == TOKEN
        assert len(found) == 150
        assert [m["title"] for m in (found[0], found[-1])] == ["MR 0", "MR 149"]

    async def test_without_a_link_header_x_next_page_is_followed(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        """Some proxies drop Link; page numbers count pages of the first page's size."""
        for number in range(5):
            gitlab.add_merge_request(f"MR {number}", state="merged")
        gitlab.fail_next(Reply.json([{"iid": 1}, {"iid": 2}], 200, **{"x-next-page": "2"}))
        parameters = {"resource": "merge_request", "operation": "list", "project": PROJECT,
                      "state": "merged", "limit": 2, "return_all": True}  # fmt: skip
        found = out(await run(gitlab, http, parameters))
        first, second = gitlab.calls("GET", f"/projects/{ENCODED}/merge_requests")
        assert first.query == {"state": ["merged"], "per_page": ["100"]}
        assert second.query == {"state": ["merged"], "per_page": ["100"], "page": ["2"]}
        assert [m["iid"] for m in found] == [1, 2]  # page 2 of 100 a page is empty

    async def test_a_next_link_to_another_host_is_not_followed(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        """The token would go with it."""
        elsewhere = '<https://elsewhere.example/merge_requests?page=2>; rel="next"'
        gitlab.fail_next(Reply.json([{"iid": 1}], 200, Link=elsewhere))
        parameters = {"resource": "merge_request", "operation": "list", "project": PROJECT}
        error = await failure(gitlab, http, parameters)
        assert error.message == (
            "gitlab merge request list: the next page is on another host; not followed"
        )
        assert len(gitlab.requests) == 1


class TestFiles:
    async def test_get_decodes_the_content_of_an_encoded_path(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        gitlab.files["docs/guide.md"] = ("Gruß\n" * 40).encode()
        parameters = {"resource": "file", "operation": "get", "project": PROJECT,
                      "file_path": "docs/guide.md", "ref": "v1.0.0"}  # fmt: skip
        [file] = out(await run(gitlab, http, parameters))
        [request] = gitlab.calls("GET", f"/projects/{ENCODED}/repository/files/docs%2Fguide.md")
        assert request.query == {"ref": ["v1.0.0"]}
        assert file["text"] == "Gruß\n" * 40
        assert (file["file_path"], file["ref"]) == ("docs/guide.md", "v1.0.0")
        assert "content" not in file

    async def test_get_defaults_to_head_and_stores_bytes_as_a_binary(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        gitlab.files["logo.png"] = b"\x89PNG\r\n\x1a\n\xff\x00"
        blobs = MemoryBlobStore()
        parameters = {"resource": "file", "operation": "get", "project": PROJECT,
                      "file_path": "logo.png", "as_binary": True,
                      "binary_property": "logo"}  # fmt: skip
        [item] = (await run(gitlab, http, parameters, blobs=blobs)).outputs["main"]
        assert gitlab.requests[0].query == {"ref": ["HEAD"]}
        assert item.binary is not None
        ref = BinaryRef.from_json(item.binary["logo"])
        assert await blobs.get(ref) == b"\x89PNG\r\n\x1a\n\xff\x00"
        assert ref.file_name == "logo.png"
        assert "text" not in item.json

    async def test_a_missing_or_binary_file_is_a_clear_error(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        gitlab.files["bin.dat"] = b"\xff\xfe"
        get = {"resource": "file", "operation": "get", "project": PROJECT}
        missing = await failure(gitlab, http, {**get, "file_path": "nope.txt"})
        assert missing.message == "gitlab file get: not found (HTTP 404: 404 File Not Found)"
        binary = await failure(gitlab, http, {**get, "file_path": "bin.dat"})
        assert binary.message == "gitlab file get: the file is not UTF-8 text; use as_binary"

    async def test_create_commits_base64_content_and_an_existing_file_is_refused(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        create = {"resource": "file", "operation": "create", "project": PROJECT,
                  "file_path": "reports/today.csv", "branch": "reports",
                  "commit_message": "Add today's report", "file_content": "a,b\n1,2\n"}  # fmt: skip
        [made] = out(await run(gitlab, http, create))
        [request] = gitlab.calls(
            "POST", f"/projects/{ENCODED}/repository/files/reports%2Ftoday.csv"
        )
        encoded = base64.b64encode(b"a,b\n1,2\n").decode()
        assert body_json(request) == {"branch": "reports", "commit_message": "Add today's report",
                                      "encoding": "base64", "content": encoded}  # fmt: skip
        assert made == {"file_path": "reports/today.csv", "branch": "reports"}
        assert gitlab.files["reports/today.csv"] == b"a,b\n1,2\n"
        again = await failure(gitlab, http, create)
        assert again.message == (
            "gitlab file create: refused (HTTP 400: A file with this name already exists)"
        )

    async def test_create_from_the_items_binary(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        blobs = MemoryBlobStore()
        ref = await blobs.put(b"\x00\x01binary", file_name="data.bin")
        create = {"resource": "file", "operation": "create", "project": PROJECT,
                  "file_path": "data.bin", "branch": "main",
                  "commit_message": "Add data"}  # fmt: skip
        await run(gitlab, http, create, blobs=blobs,
                  ctx_items=items({}, binary={"data": ref.to_json()}))  # fmt: skip
        assert gitlab.files["data.bin"] == b"\x00\x01binary"
        no_binary = await failure(gitlab, http, {**create, "file_path": "other.bin"})
        assert no_binary.message == (
            "gitlab file create: the item has no binary 'data' and file_content is unset "
            "(it has: none)"
        )


class TestReleases:
    async def test_create_a_release_from_a_ref_and_a_taken_tag_is_refused(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        parameters = {"resource": "release", "operation": "create", "project": PROJECT,
                      "tag_name": "v1.2.0", "ref": "main", "release_name": "1.2.0",
                      "description": "Changes"}  # fmt: skip
        [release] = out(await run(gitlab, http, parameters))
        assert body_json(gitlab.calls("POST", f"/projects/{ENCODED}/releases")[0]) == {
            "tag_name": "v1.2.0", "ref": "main", "description": "Changes",
            "name": "1.2.0"}  # fmt: skip
        assert (release["tag_name"], release["name"]) == ("v1.2.0", "1.2.0")
        assert "v1.2.0" in gitlab.tags
        taken = await failure(gitlab, http, parameters)
        assert taken.message == "gitlab release create: refused (HTTP 409: Release already exists)"


class TestFailures:
    async def test_a_wrong_token_is_refused(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        error = await failure(gitlab, http, CREATE, token="glpat-wrongwrongwrong")
        assert error.message == (
            "gitlab issue create: the credential was refused (HTTP 401: 401 Unauthorized)"
        )
        assert error.retryable is False

    async def test_a_429_waits_retry_after_else_until_ratelimit_reset(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        gitlab.fail_next(rate_limited(retry_after_s=60))
        error = await failure(gitlab, http, CREATE)
        assert error.message == "gitlab issue create: rate limited (HTTP 429); retry after 60 s"
        assert (error.retryable, error.retry_after_s) == (True, 60.0)
        gitlab.fail_next(rate_limited(reset_epoch=int(FIXED_NOW.timestamp()) + 42))
        assert (await failure(gitlab, http, CREATE)).retry_after_s == 42.0

    async def test_a_500_a_malformed_answer_and_a_timeout(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        gitlab.fail_next(Reply(500, '{"message":"500 Internal Server Error"}',
                               content_type="application/json"))  # fmt: skip
        server = await failure(gitlab, http, CREATE)
        assert (server.message, server.retryable) == (
            "gitlab issue create: the service failed (HTTP 500: 500 Internal Server Error)",
            True,
        )
        gitlab.fail_next(Reply(201, "<html>", content_type="text/html"))
        malformed = await failure(gitlab, http, CREATE)
        assert malformed.message == "gitlab issue create: the answer is not JSON (HTTP 201): <html>"
        gitlab.fail_next(HANG)
        slow = await failure(gitlab, http, {**CREATE, "timeout_s": 0.2})
        assert (slow.message, slow.retryable) == (
            "gitlab issue create: timed out after 0.2 s",
            True,
        )

    async def test_the_engine_waits_retry_after_then_creates_the_issue(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        gitlab.fail_next(rate_limited(retry_after_s=30))
        clock = StepClock()
        result = await run_in_engine(
            http, "gitlab", CREATE, clock=clock, retry={"max_attempts": 2, "backoff_s": 600},
            credentials={"gitlab": {"type": "gitlab", "data": credential(gitlab)}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        assert clock.slept == [30.0]
        assert events(result, "node.retrying")[0]["delay_s"] == 30.0
        assert len(gitlab.calls("POST", ISSUES)) == 2
        assert result.output_of(NODE)[0]["iid"] == 1


class TestCredential:
    async def test_the_check_reads_the_user(
        self, gitlab: FakeGitLab, http: httpx.AsyncClient
    ) -> None:
        assert GITLAB_CREDENTIAL.check is not None
        assert await GITLAB_CREDENTIAL.check(Checking(http), credential(gitlab)) == (
            "authenticated as linkflow-bot"
        )
        assert gitlab.requests[0].path == "/api/v4/user"
        with pytest.raises(NodeError, match=r"^gitlab user get: the credential was refused"):
            await GITLAB_CREDENTIAL.check(Checking(http), credential(gitlab, "glpat-nope"))

"""The github node and credential against a loopback fake of GitHub's REST API
(tests/_saas/github.py), through the real SSRF-guarded client (loopback allowed)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from linkflow.nodes.integrations.github import GITHUB_CREDENTIAL, GitHub
from linkflow.nodes.sdk import BinaryRef, NodeError, NodeResult
from linkflow.nodes.testing import FIXED_NOW, FakeContext, MemoryBlobStore, items, run_node
from linkflow.security.ssrf import guarded_client
from tests._saas._base import HANG, Reply, body_json
from tests._saas._engine import NODE, Checking, events, run_in_engine
from tests._saas.github import (
    OWNER,
    REPO,
    TOKEN,
    FakeGitHub,
    blob_sha,
    fake_github,
    primary_limit,
    secondary_limit,
)
from tests.unit.engine._support import START, StepClock

ISSUES = f"/repos/{OWNER}/{REPO}/issues"
WHERE = {"owner": OWNER, "repository": REPO}
CREATE = {"resource": "issue", "operation": "create", **WHERE, "title": "Nightly build failed"}


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with fake_github() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def credential(github: FakeGitHub, token: str = TOKEN) -> dict[str, Any]:
    return {"type": "github", "token": token, "base_url": github.url}


async def run(
    github: FakeGitHub, http: httpx.AsyncClient, parameters: dict[str, Any], *,
    token: str = TOKEN, ctx_items: Any = None, blobs: MemoryBlobStore | None = None,
) -> NodeResult:  # fmt: skip
    ctx = FakeContext(items=ctx_items or items({}), parameters=parameters, blobs=blobs,
                      credentials={"github": credential(github, token)}, http=http)  # fmt: skip
    return await run_node(GitHub, ctx)


def out(result: NodeResult) -> list[dict[str, Any]]:
    return [item.json for item in result.outputs["main"]]


async def failure(github: FakeGitHub, http: httpx.AsyncClient, parameters: dict[str, Any],
                  **kwargs: Any) -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(github, http, parameters, **kwargs)
    assert kwargs.get("token", TOKEN) not in caught.value.message
    return caught.value


class TestIssues:
    async def test_create_sends_the_fields_with_githubs_headers(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        parameters = {**CREATE, "body": "See the log.", "labels": ["ci"], "assignees": ["ada"]}
        [issue] = out(await run(github, http, parameters))
        [request] = github.calls("POST", ISSUES)
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["x-github-api-version"] == "2022-11-28"
        assert body_json(request) == {"title": "Nightly build failed", "body": "See the log.",
                                      "labels": ["ci"], "assignees": ["ada"]}  # fmt: skip
        assert issue == github.issues[1]
        assert (issue["number"], issue["state"]) == (1, "open")

    async def test_get_edit_and_comment_on_an_issue(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        await run(github, http, CREATE)
        one = {"resource": "issue", **WHERE, "issue_number": 1}
        [got] = out(await run(github, http, {**one, "operation": "get"}))
        assert got["title"] == "Nightly build failed"
        [edited] = out(await run(github, http, {**one, "operation": "edit", "state": "closed",
                                                "labels": ["ci", "fixed"]}))  # fmt: skip
        assert body_json(github.calls("PATCH", f"{ISSUES}/1")[0]) == {
            "state": "closed", "labels": ["ci", "fixed"]}  # fmt: skip
        assert (edited["state"], edited["state_reason"]) == ("closed", "completed")
        [comment] = out(await run(github, http, {**one, "operation": "comment",
                                                 "body": "Fixed by #2."}))  # fmt: skip
        assert body_json(github.calls("POST", f"{ISSUES}/1/comments")[0]) == {
            "body": "Fixed by #2."
        }
        assert comment["body"] == "Fixed by #2."
        assert github.issues[1]["comments"] == 1

    async def test_githubs_validation_errors_are_named(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        github.fail_next(Reply.json({"message": "Validation Failed", "errors": [
            {"resource": "Issue", "field": "title", "code": "missing_field"}]}, 422))  # fmt: skip
        error = await failure(github, http, CREATE)
        assert error.message == (
            "github issue create: refused (HTTP 422: Validation Failed: Issue title missing_field)"
        )
        missing = await failure(github, http, {"resource": "issue", "operation": "get", **WHERE,
                                               "issue_number": 99})  # fmt: skip
        assert missing.message == "github issue get: not found (HTTP 404: Not Found)"

    def test_required_parameters_are_named_when_the_workflow_is_saved(self) -> None:
        node = GitHub()
        assert node.check({"resource": "issue", "operation": "comment", **WHERE}) == [
            "issue_number is required for issue comment",
            "body is required for issue comment",
        ]
        assert node.check({"resource": "release", "operation": "list", **WHERE}) == [
            "operation 'list' is not one of release's: create"]  # fmt: skip


class TestPullRequests:
    async def test_list_follows_the_link_header_until_the_limit(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        """250 open pull requests, limit 150: per_page=100, then the next link's page 2;
        one item per pull request."""
        for number in range(250):
            github.add_pull(f"PR {number}")
        github.add_pull("merged", state="closed")
        parameters = {"resource": "pull_request", "operation": "list", **WHERE, "limit": 150}
        pulls = out(await run(github, http, parameters))
        first, second = github.calls("GET", f"/repos/{OWNER}/{REPO}/pulls")
        assert first.query == {"per_page": ["100"]}
        assert second.query == {"per_page": ["100"], "page": ["2"]}
        assert second.headers["authorization"] == f"Bearer {TOKEN}"
        assert len(pulls) == 150
        assert [p["title"] for p in pulls[:2]] == ["PR 0", "PR 1"]
        assert pulls[-1]["title"] == "PR 149"

    async def test_return_all_with_a_state_reads_every_page(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        for number in range(120):
            github.add_pull(f"PR {number}", state="closed" if number % 2 else "open")
        parameters = {"resource": "pull_request", "operation": "list", **WHERE,
                      "return_all": True, "state": "closed"}  # fmt: skip
        pulls = out(await run(github, http, parameters))
        assert len(pulls) == 60
        assert {p["state"] for p in pulls} == {"closed"}
        assert github.requests[0].query == {"state": ["closed"], "per_page": ["100"]}

    async def test_a_next_link_to_another_host_is_not_followed(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        """The token would go with it."""
        elsewhere = '<https://elsewhere.example/pulls?page=2>; rel="next"'
        github.fail_next(Reply.json([{"number": 1}], 200, Link=elsewhere))
        parameters = {"resource": "pull_request", "operation": "list", **WHERE, "limit": 500}
        error = await failure(github, http, parameters)
        assert (
            error.message
            == "github pull request list: the next page is on another host; not followed"
        )
        assert len(github.requests) == 1


class TestFiles:
    async def test_get_decodes_the_base64_content(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        github.files["docs/guide.md"] = ("Gruß\n" * 40).encode()
        parameters = {"resource": "file", "operation": "get", **WHERE, "path": "docs/guide.md",
                      "ref": "v1.0"}  # fmt: skip
        [file] = out(await run(github, http, parameters))
        [request] = github.calls("GET", f"/repos/{OWNER}/{REPO}/contents/docs/guide.md")
        assert request.query == {"ref": ["v1.0"]}
        assert file["text"] == "Gruß\n" * 40
        assert file["sha"] == blob_sha(github.files["docs/guide.md"])
        assert "content" not in file

    async def test_get_as_binary_stores_the_bytes(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        github.files["logo.png"] = b"\x89PNG\r\n\x1a\n\xff\x00"
        blobs = MemoryBlobStore()
        parameters = {"resource": "file", "operation": "get", **WHERE, "path": "logo.png",
                      "as_binary": True, "binary_property": "logo"}  # fmt: skip
        [item] = (await run(github, http, parameters, blobs=blobs)).outputs["main"]
        assert item.binary is not None
        ref = BinaryRef.from_json(item.binary["logo"])
        assert await blobs.get(ref) == b"\x89PNG\r\n\x1a\n\xff\x00"
        assert ref.file_name == "logo.png"
        assert "text" not in item.json

    async def test_a_directory_or_binary_text_is_a_clear_error(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        github.files["docs/a.md"] = b"a"
        github.files["bin.dat"] = b"\xff\xfe"
        get = {"resource": "file", "operation": "get", **WHERE}
        folder = await failure(github, http, {**get, "path": "docs"})
        assert folder.message == "github file get: the path is a directory, not a file"
        binary = await failure(github, http, {**get, "path": "bin.dat"})
        assert binary.message == "github file get: the file is not UTF-8 text; use as_binary"

    async def test_create_commits_base64_content_and_replacing_needs_the_sha(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        create = {"resource": "file", "operation": "create", **WHERE, "path": "reports/today.csv",
                  "message": "Add today's report", "file_content": "a,b\n1,2\n",
                  "ref": "reports"}  # fmt: skip
        [made] = out(await run(github, http, create))
        [request] = github.calls("PUT", f"/repos/{OWNER}/{REPO}/contents/reports/today.csv")
        encoded = base64.b64encode(b"a,b\n1,2\n").decode()
        assert body_json(request) == {"message": "Add today's report", "branch": "reports",
                                      "content": encoded}  # fmt: skip
        assert made["commit"]["message"] == "Add today's report"
        assert github.files["reports/today.csv"] == b"a,b\n1,2\n"
        again = await failure(github, http, create)
        assert (
            again.message
            == 'github file create: refused (HTTP 422: Invalid request. "sha" wasn\'t supplied.)'
        )
        sha = made["content"]["sha"]
        await run(github, http, {**create, "file_content": "a,b\n3,4\n", "sha": sha})
        assert github.files["reports/today.csv"] == b"a,b\n3,4\n"

    async def test_create_from_the_items_binary(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        blobs = MemoryBlobStore()
        ref = await blobs.put(b"\x00\x01binary", file_name="data.bin")
        create = {"resource": "file", "operation": "create", **WHERE, "path": "data.bin",
                  "message": "Add data"}  # fmt: skip
        await run(github, http, create, blobs=blobs,
                  ctx_items=items({}, binary={"data": ref.to_json()}))  # fmt: skip
        assert github.files["data.bin"] == b"\x00\x01binary"


class TestReleases:
    async def test_create_a_release_and_a_taken_tag_is_refused(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        parameters = {"resource": "release", "operation": "create", **WHERE, "tag_name": "v1.2.0",
                      "release_name": "1.2.0", "body": "Changes", "prerelease": True}  # fmt: skip
        [release] = out(await run(github, http, parameters))
        assert body_json(github.calls("POST", f"/repos/{OWNER}/{REPO}/releases")[0]) == {
            "tag_name": "v1.2.0", "name": "1.2.0", "body": "Changes", "draft": False,
            "prerelease": True}  # fmt: skip
        assert (release["tag_name"], release["prerelease"]) == ("v1.2.0", True)
        error = await failure(github, http, parameters)
        assert error.message == (
            "github release create: refused (HTTP 422: Validation Failed: "
            "Release tag_name already_exists)"
        )


class TestFailures:
    async def test_a_wrong_token_is_refused(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        error = await failure(github, http, CREATE, token="ghp_wrongwrongwrong")
        assert (
            error.message
            == "github issue create: the credential was refused (HTTP 401: Bad credentials)"
        )

    async def test_the_primary_rate_limit_waits_until_the_reset(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        """403 with no requests left: retryable, until x-ratelimit-reset (from ctx.now())."""
        github.fail_next(primary_limit(int(FIXED_NOW.timestamp()) + 42))
        error = await failure(github, http, CREATE)
        assert error.message == "github issue create: rate limited (HTTP 403); retry after 42 s"
        assert (error.retryable, error.retry_after_s) == (True, 42.0)

    async def test_a_secondary_rate_limit_and_a_429_wait_retry_after(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        github.fail_next(secondary_limit(60))
        error = await failure(github, http, CREATE)
        assert (error.retryable, error.retry_after_s) == (True, 60.0)
        github.fail_next(Reply.json({"message": "Too many requests"}, 429, **{"Retry-After": "9"}))
        assert (await failure(github, http, CREATE)).retry_after_s == 9.0

    async def test_a_403_without_a_limit_is_permission(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        github.fail_next(Reply.json({"message": "Resource not accessible by integration"}, 403,
                                    **{"x-ratelimit-remaining": "4999"}))  # fmt: skip
        error = await failure(github, http, CREATE)
        assert error.message == (
            "github issue create: not permitted (HTTP 403: Resource not accessible by integration)"
        )
        assert error.retryable is False

    async def test_a_500_a_malformed_answer_and_a_timeout(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        github.fail_next(Reply(500, ""))
        server = await failure(github, http, CREATE)
        assert (server.message, server.retryable) == (
            "github issue create: the service failed (HTTP 500)", True)  # fmt: skip
        github.fail_next(Reply(201, "{", content_type="application/json"))
        malformed = await failure(github, http, CREATE)
        assert malformed.message == "github issue create: the answer is not JSON (HTTP 201): {"
        github.fail_next(HANG)
        slow = await failure(github, http, {**CREATE, "timeout_s": 0.2})
        assert (slow.message, slow.retryable) == (
            "github issue create: timed out after 0.2 s",
            True,
        )

    async def test_the_engine_waits_for_the_reset_then_creates_the_issue(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        """The engine's clock starts at START; the limit resets 30 s later."""
        github.fail_next(primary_limit(int(START.timestamp()) + 30))
        clock = StepClock()
        result = await run_in_engine(
            http, "github", CREATE, clock=clock, retry={"max_attempts": 2, "backoff_s": 600},
            credentials={"github": {"type": "github", "data": credential(github)}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        [slept] = clock.slept
        assert 29 < slept <= 30
        assert events(result, "node.retrying")[0]["delay_s"] == slept
        assert len(github.calls("POST", ISSUES)) == 2
        assert result.output_of(NODE)[0]["number"] == 1


class TestCredential:
    async def test_the_check_reads_the_user(
        self, github: FakeGitHub, http: httpx.AsyncClient
    ) -> None:
        assert GITHUB_CREDENTIAL.check is not None
        assert await GITHUB_CREDENTIAL.check(Checking(http), credential(github)) == (
            "authenticated as linkflow-bot"
        )
        with pytest.raises(NodeError, match=r"^github user get: the credential was refused"):
            await GITHUB_CREDENTIAL.check(Checking(http), credential(github, "ghp_nope"))

"""The GitHub integration: the `github` node (issue create/get/edit/comment, pull request
list, file get/create, release create) and the `github` credential (a token), on GitHub's
REST API called with httpx through `ctx.http()`.

Decisions:
- No SDK: PyGithub is synchronous and brings requests; githubkit would do, but its
  HTTP goes through a client of its own rather than the SSRF-guarded one. The REST
  API is one request per operation.
- Every request sends `Authorization: Bearer`, `Accept: application/vnd.github+json`
  and the API version GitHub asks clients to pin (`X-GitHub-Api-Version`).
- Lists follow the `Link` header's `rel="next"` until `limit` records are in hand;
  a next link to another origin than the credential's is refused, since the token
  would go with it.
- GitHub's errors are `{"message", "errors"?, "documentation_url"}`: the message and
  each validation error are in the node error. A rate limit is a 429, or a 403 with
  Retry-After (secondary limit) or with `x-ratelimit-remaining: 0` (primary limit);
  its delay is Retry-After, else the time until `x-ratelimit-reset`.
- Files travel base64-encoded, as the contents API wants them: `file get` gives the
  text (or the bytes as a binary, `as_binary`), `file create` sends the text of
  `file_content` or the item's binary (`binary_property`).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote, urlsplit

import httpx

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.integrations._rest import (
    LIST_PARAMETERS,
    TIMEOUT_PARAMETER,
    Answer,
    Page,
    Rest,
    Service,
    base_url,
    collect,
    header_retry_after,
    list_limit,
)
from linkflow.nodes.sdk import (
    BinaryRef,
    CheckContext,
    CredentialField,
    CredentialType,
    Item,
    JsonObject,
    Lineage,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    Pair,
    amap_items,
)

__all__ = ["CREDENTIALS", "GITHUB_CREDENTIAL", "NODES", "GitHub"]

BASE_URL: Final = "https://api.github.com"
API_VERSION: Final = "2022-11-28"
PAGE_SIZE: Final = 100
"""GitHub's largest `per_page`."""
MAX_FILE_BYTES: Final = 100 * 1024 * 1024
"""The contents API refuses files above 100 MB."""

OPERATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "issue": ("create", "get", "edit", "comment"),
    "pull_request": ("list",),
    "file": ("get", "create"),
    "release": ("create",),
}
_REQUIRED: Final[Mapping[tuple[str, str], tuple[str, ...]]] = {
    ("issue", "create"): ("title",),
    ("issue", "get"): ("issue_number",),
    ("issue", "edit"): ("issue_number",),
    ("issue", "comment"): ("issue_number", "body"),
    ("file", "get"): ("path",),
    ("file", "create"): ("path", "message"),
    ("release", "create"): ("tag_name",),
}


def _detail(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    problems = []
    for error in body.get("errors") or ():
        if isinstance(error, dict):
            said = error.get("message") or " ".join(
                str(error[key]) for key in ("resource", "field", "code") if error.get(key)
            )
            problems.append(str(said))
        elif isinstance(error, str):
            problems.append(error)
    return str(body["message"]) + (f": {'; '.join(problems)}" if problems else "")


def _rate_limited(answer: Answer) -> bool:
    if answer.status == 429:
        return True
    headers = answer.headers
    return answer.status == 403 and (
        "retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"
    )


def _retry_after(answer: Answer, now: datetime) -> float | None:
    delay = header_retry_after(answer, now)
    if delay is not None:
        return delay
    reset = answer.headers.get("x-ratelimit-reset", "")
    if reset.isdigit():
        return max(int(reset) - now.timestamp(), 0.0)
    return None


SERVICE: Final = Service("github", detail=_detail, rate_limited=_rate_limited,
                         retry_after=_retry_after)  # fmt: skip


def _api(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> Rest:
    token = str(data.get("token") or "")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": API_VERSION}  # fmt: skip
    return Rest(http, SERVICE, base_url(data, BASE_URL), now=now, timeout_s=timeout_s,
                headers=headers, secrets=(token,))  # fmt: skip


async def _check(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """GET /user with the token: whose it is."""
    rest = _api(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    user = (await rest.call("user get", "GET", "/user")).body
    return f"authenticated as {user.get('login')}"


GITHUB_CREDENTIAL: Final = CredentialType(
    "github",
    "GitHub",
    "A GitHub token: fine-grained or classic personal access token, or an app's token.",
    (
        CredentialField(
            "token",
            required=True,
            secret=True,
            description="The token (github_pat_..., ghp_..., ghs_...).",
        ),
        CredentialField(
            "base_url",
            "url",
            default=BASE_URL,
            description="The REST API's address: https://HOST/api/v3 for GitHub Enterprise "
            "Server.",
        ),
    ),
    check=_check,
)


class GitHub(Node):
    type = "github"
    display_name = "GitHub"
    group = NodeGroup.ACTION
    description = (
        "Per item, one GitHub REST API call on `owner`/`repository` (credential slot "
        "`github`): `issue` `create`, `get`, `edit` (title, body, state, labels, assignees) or "
        "`comment`; `pull_request` `list` (one item per pull request, following the Link "
        "header up to `limit`); `file` `get` (the text, or the bytes as the binary "
        "`binary_property` with `as_binary`) or `create` (commits `file_content` or the item's "
        "binary; `sha` replaces an existing file); `release` `create`. The output item is "
        "GitHub's answer. GitHub's errors fail the item with its message; rate limits (429, "
        "or 403 with no requests left) are retryable after Retry-After or x-ratelimit-reset."
    )
    lineage = Lineage.ONE_TO_MANY
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"github": ("github",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "enum": list(OPERATIONS), "default": "issue",
                         "description": "issue, pull_request, file or release."},
            "operation": {"type": "string", "enum": ["create", "get", "edit", "comment", "list"],
                          "default": "create",
                          "description": "issue: create, get, edit, comment; pull_request: "
                                         "list; file: get, create; release: create."},
            "owner": {"type": "string", "minLength": 1,
                      "description": "The repository's owner (user or organisation)."},
            "repository": {"type": "string", "minLength": 1,
                           "description": "The repository's name."},
            "issue_number": {"type": "integer", "minimum": 1,
                             "description": "issue get, edit, comment: the issue's number."},
            "title": {"type": "string", "minLength": 1,
                      "description": "issue create, edit: the title."},
            "body": {"type": "string",
                     "description": "issue create, edit: the description; comment: the "
                                    "comment; release create: the notes (Markdown)."},
            "labels": {"type": "array", "items": {"type": "string"},
                       "description": "issue create, edit: label names (edit: replaces them)."},
            "assignees": {"type": "array", "items": {"type": "string"},
                          "description": "issue create, edit: logins (edit: replaces them)."},
            "state": {"type": "string", "enum": ["open", "closed", "all"],
                      "description": "issue edit: open or closed; pull_request list: which "
                                     "(default open)."},
            "path": {"type": "string", "minLength": 1,
                     "description": "file: the path in the repository, e.g. `docs/a.md`."},
            "ref": {"type": "string", "minLength": 1,
                    "description": "file get: the branch, tag or commit (default: the "
                                   "default branch); file create: the branch to commit to."},
            "message": {"type": "string", "minLength": 1,
                        "description": "file create: the commit message."},
            "file_content": {"type": "string",
                             "description": "file create: the file's text (unset: the "
                                            "item's binary `binary_property`)."},
            "sha": {"type": "string", "pattern": "^[0-9a-f]{40}$",
                    "description": "file create: the blob sha of the file it replaces."},
            "as_binary": {"type": "boolean", "default": False,
                          "description": "file get: put the bytes in the binary "
                                         "`binary_property` instead of `text`."},
            "binary_property": {"type": "string", "minLength": 1, "default": "data",
                                "description": "file: the item's binary read or written."},
            "tag_name": {"type": "string", "minLength": 1,
                         "description": "release create: the tag (created if absent)."},
            "release_name": {"type": "string",
                             "description": "release create: the title (default: the tag)."},
            "target_commitish": {"type": "string", "minLength": 1,
                                 "description": "release create: the branch or commit a new "
                                                "tag points at."},
            "draft": {"type": "boolean", "default": False,
                      "description": "release create: a draft."},
            "prerelease": {"type": "boolean", "default": False,
                           "description": "release create: a pre-release."},
            **LIST_PARAMETERS,
            "extra": {"type": "object", "additionalProperties": True, "default": {},
                      "description": "More fields of the request (body, or query for list), "
                                     "sent as they are (e.g. `milestone`, `sort`)."},
            "timeout_s": TIMEOUT_PARAMETER,
        },
        "required": ["resource", "operation", "owner", "repository"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        resource = parameters.get("resource", "issue")
        operation = parameters.get("operation", "create")
        allowed = OPERATIONS.get(resource, ())
        if operation not in allowed:
            return [f"operation {operation!r} is not one of {resource}'s: {', '.join(allowed)}"]
        return [
            f"{name} is required for {resource} {operation}"
            for name in _REQUIRED.get((resource, operation), ())
            if parameters.get(name) is None
        ]

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        rest: Rest | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal rest
            resource = params.text("resource", index)
            operation = params.text("operation", index)
            if operation not in OPERATIONS.get(resource, ()):
                raise NodeError(f"github: {resource} has no operation {operation!r}")
            if rest is None:
                data = await ctx.credential("github")
                rest = _api(ctx.http(), data, ctx.now, params.number("timeout_s", index))
            name = f"{resource.replace('_', ' ')} {operation}"
            call = _Call(ctx, rest, params, item, index, name)
            return await _OPERATIONS[(resource, operation)](call)

        return await amap_items(ctx, apply)


class _Call:
    """One item's operation: what every operation function needs."""

    def __init__(
        self, ctx: NodeContext, rest: Rest, params: Params, item: Item, index: int, name: str
    ) -> None:
        self.ctx, self.rest, self.params, self.item, self.index = ctx, rest, params, item, index
        self.name = name
        owner = quote(params.text("owner", index), safe="")
        repository = quote(params.text("repository", index), safe="")
        self.repo = f"/repos/{owner}/{repository}"

    def out(self, json: JsonObject) -> list[Item]:
        return [self.item.derive(json, self.index)]

    def fields(self, *names: str) -> JsonObject:
        """The parameters `names` that are set, and `extra`, as a request body."""
        body: JsonObject = dict(self.params.mapping("extra", self.index))
        for name in names:
            value = self.params.get(name, self.index)
            if value is not None:
                body[name] = value
        return body

    async def send(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self.rest.call(self.name, method, self.repo + path, **kwargs)).body


async def _issue_create(call: _Call) -> list[Item]:
    body = call.fields("title", "body", "labels", "assignees")
    return call.out(await call.send("POST", "/issues", json=body))


def _issue_path(call: _Call) -> str:
    return f"/issues/{call.params.integer('issue_number', call.index)}"


async def _issue_get(call: _Call) -> list[Item]:
    return call.out(await call.send("GET", _issue_path(call)))


async def _issue_edit(call: _Call) -> list[Item]:
    body = call.fields("title", "body", "labels", "assignees", "state")
    if body.get("state") == "all":
        raise NodeError("github issue edit: state must be open or closed")
    return call.out(await call.send("PATCH", _issue_path(call), json=body))


async def _issue_comment(call: _Call) -> list[Item]:
    body = call.fields("body")
    return call.out(await call.send("POST", f"{_issue_path(call)}/comments", json=body))


async def _pull_request_list(call: _Call) -> list[Item]:
    params, index = call.params, call.index
    limit = list_limit(params.flag("return_all", index), params.integer("limit", index))
    origin = _origin(call.rest.base)

    async def page(next_url: str | None, wanted: int | None) -> Page:
        if next_url is None:
            size = PAGE_SIZE if wanted is None else min(PAGE_SIZE, wanted)
            query = {**params.mapping("extra", index), "state": params.get("state", index),
                     "per_page": size}  # fmt: skip
            answer = await call.rest.call(call.name, "GET", f"{call.repo}/pulls", params=query)
        else:
            if _origin(next_url) != origin:
                raise call.rest.error(call.name, "the next page is on another host; not followed")
            answer = await call.rest.call(call.name, "GET", next_url, absolute=True)
        if not isinstance(answer.body, list):
            raise call.rest.error(call.name, "the answer is not a list")
        return answer.body, answer.links.get("next")

    records = await collect(page, limit)
    return [call.item.derive(record, index) for record in records]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _content_path(call: _Call) -> str:
    return "/contents/" + quote(call.params.text("path", call.index).strip("/"), safe="/")


async def _file_get(call: _Call) -> list[Item]:
    ref = call.params.optional_text("ref", call.index)
    found = await call.send("GET", _content_path(call), params={"ref": ref})
    if not isinstance(found, dict) or found.get("type") != "file":
        kind = "a directory" if isinstance(found, list) else f"a {found.get('type')}"
        raise call.rest.error(call.name, f"the path is {kind}, not a file")
    content = _decoded(call, found)
    json = {key: value for key, value in found.items() if key not in {"content", "encoding"}}
    binary = dict(call.item.binary or {})
    if call.params.flag("as_binary", call.index):
        stored = await call.ctx.blobs.put(content, file_name=str(found.get("name") or "file"))
        binary[call.params.text("binary_property", call.index)] = stored.to_json()
    else:
        try:
            json["text"] = content.decode("utf-8")
        except UnicodeDecodeError:
            raise call.rest.error(call.name, "the file is not UTF-8 text; use as_binary") from None
    return [Item(json=json, paired=(Pair(0, call.index),), binary=binary or None)]


def _decoded(call: _Call, found: Mapping[str, Any]) -> bytes:
    if found.get("encoding") != "base64" or not isinstance(found.get("content"), str):
        # Files over 1 MB come without content ("encoding": "none").
        raise call.rest.error(call.name, "GitHub sent no content for this file (over 1 MB?)")
    try:
        return base64.b64decode(found["content"], validate=False)
    except ValueError:
        raise call.rest.error(call.name, "the file's content is not base64") from None


async def _file_create(call: _Call) -> list[Item]:
    params, index = call.params, call.index
    text = params.optional_text("file_content", index)
    if text is not None:
        content = text.encode("utf-8")
    else:
        name = params.text("binary_property", index)
        raw = (call.item.binary or {}).get(name)
        if raw is None:
            have = ", ".join(sorted(call.item.binary or {})) or "none"
            raise NodeError(f"github file create: the item has no binary {name!r} and "
                            f"file_content is unset (it has: {have})")  # fmt: skip
        ref = BinaryRef.from_json(raw)
        if ref.size > MAX_FILE_BYTES:
            raise NodeError(f"github file create: the file is larger than {MAX_FILE_BYTES} bytes")
        content = await call.ctx.blobs.get(ref)
    body = call.fields("message", "sha")
    ref_name = params.optional_text("ref", index)
    if ref_name is not None:
        body["branch"] = ref_name
    body["content"] = base64.b64encode(content).decode("ascii")
    return call.out(await call.send("PUT", _content_path(call), json=body))


async def _release_create(call: _Call) -> list[Item]:
    body = call.fields("tag_name", "target_commitish", "body", "draft", "prerelease")
    name = call.params.optional_text("release_name", call.index)
    if name is not None:
        body["name"] = name
    return call.out(await call.send("POST", "/releases", json=body))


_OPERATIONS: Final[Mapping[tuple[str, str], Callable[[_Call], Awaitable[list[Item]]]]] = {
    ("issue", "create"): _issue_create, ("issue", "get"): _issue_get,
    ("issue", "edit"): _issue_edit, ("issue", "comment"): _issue_comment,
    ("pull_request", "list"): _pull_request_list,
    ("file", "get"): _file_get, ("file", "create"): _file_create,
    ("release", "create"): _release_create,
}  # fmt: skip

NODES: tuple[type[Node], ...] = (GitHub,)
CREDENTIALS: tuple[CredentialType, ...] = (GITHUB_CREDENTIAL,)

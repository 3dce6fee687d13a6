"""The GitLab integration: the `gitlab` node (issue create/get/edit/comment, merge request
list, file get/create, release create) and the `gitlab` credential (a personal, project or
group access token), on GitLab's REST API (v4) called with httpx through `ctx.http()`.

Decisions:
- No SDK: python-gitlab is synchronous and brings requests; the REST API is one
  request per operation.
- Every request sends the token as `PRIVATE-TOKEN`, as GitLab documents for access
  tokens; `base_url` (default gitlab.com's) makes a self-managed instance work.
- A project is its numeric id or its path (`group/sub/project`), sent URL-encoded as
  one path segment; an already encoded path (`group%2Fproject`) is accepted too. File
  paths are encoded the same way (`docs%2Fa.md`), as the repository files API wants.
- Lists follow the `Link` header's `rel="next"` (same origin only: the token would go
  with it), else the `x-next-page` header, until `limit` records are in hand.
- GitLab's errors are `{"message": "..."}`, `{"message": {"field": ["problem"]}}` or
  `{"error": "...", "error_description"?}`: the words are in the node error. A 429 is
  retryable after Retry-After, else until `RateLimit-Reset` (an epoch second).
- Files travel base64-encoded: `file get` gives the text (or the bytes as a binary,
  `as_binary`), `file create` sends the text of `file_content` or the item's binary.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote, unquote, urlsplit

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

__all__ = ["CREDENTIALS", "GITLAB_CREDENTIAL", "NODES", "GitLab"]

BASE_URL: Final = "https://gitlab.com/api/v4"
PAGE_SIZE: Final = 100
"""GitLab's largest `per_page`."""
MAX_FILE_BYTES: Final = 10 * 1024 * 1024
"""What one JSON request should carry (base64 adds a third); larger files belong in LFS."""

OPERATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "issue": ("create", "get", "edit", "comment"),
    "merge_request": ("list",),
    "file": ("get", "create"),
    "release": ("create",),
}
_REQUIRED: Final[Mapping[tuple[str, str], tuple[str, ...]]] = {
    ("issue", "create"): ("title",),
    ("issue", "get"): ("issue_iid",),
    ("issue", "edit"): ("issue_iid",),
    ("issue", "comment"): ("issue_iid", "body"),
    ("file", "get"): ("file_path",),
    ("file", "create"): ("file_path", "branch", "commit_message"),
    ("release", "create"): ("tag_name",),
}


def _detail(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    message = body.get("message")
    if isinstance(message, dict):  # validation errors: {"title": ["can't be blank"]}
        return "; ".join(
            f"{field} {' '.join(map(str, problems)) if isinstance(problems, list) else problems}"
            for field, problems in message.items()
        )
    if isinstance(message, list):
        return "; ".join(map(str, message))
    if isinstance(message, str) and message:
        return message
    error = body.get("error")
    if isinstance(error, str) and error:
        described = body.get("error_description")
        return f"{error}: {described}" if isinstance(described, str) and described else error
    return None


def _retry_after(answer: Answer, now: datetime) -> float | None:
    delay = header_retry_after(answer, now)
    if delay is not None:
        return delay
    reset = answer.headers.get("ratelimit-reset", "")
    if reset.isdigit():
        return max(int(reset) - now.timestamp(), 0.0)
    return None


SERVICE: Final = Service("gitlab", detail=_detail, retry_after=_retry_after)


def _api(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> Rest:
    token = str(data.get("token") or "")
    headers = {"PRIVATE-TOKEN": token, "Accept": "application/json"}
    return Rest(http, SERVICE, base_url(data, BASE_URL), now=now, timeout_s=timeout_s,
                headers=headers, secrets=(token,))  # fmt: skip


async def _check(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """GET /user with the token: whose it is."""
    rest = _api(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    user = (await rest.call("user get", "GET", "/user")).body
    name = user.get("username") if isinstance(user, dict) else None
    return f"authenticated as {name}"


GITLAB_CREDENTIAL: Final = CredentialType(
    "gitlab",
    "GitLab",
    "A GitLab access token (personal, project or group) with the `api` scope.",
    (
        CredentialField("token", required=True, secret=True, description="The token (glpat-...)."),
        CredentialField(
            "base_url",
            "url",
            default=BASE_URL,
            description="The REST API's address: https://HOST/api/v4 for a self-managed instance.",
        ),
    ),
    check=_check,
)


class GitLab(Node):
    type = "gitlab"
    display_name = "GitLab"
    group = NodeGroup.ACTION
    description = (
        "Per item, one GitLab REST API call on `project` (its id or path; credential slot "
        "`gitlab`): `issue` `create`, `get`, `edit` (title, description, labels, assignees, "
        "`state_event` close or reopen) or `comment` (a note); `merge_request` `list` (one "
        "item per merge request, following the Link header up to `limit`); `file` `get` (the "
        "text, or the bytes as the binary `binary_property` with `as_binary`) or `create` "
        "(commits `file_content` or the item's binary to `branch`); `release` `create`. The "
        "output item is GitLab's answer. GitLab's errors fail the item with its message; a "
        "429 is retryable after Retry-After or RateLimit-Reset."
    )
    lineage = Lineage.ONE_TO_MANY
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"gitlab": ("gitlab",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "enum": list(OPERATIONS), "default": "issue",
                         "description": "issue, merge_request, file or release."},
            "operation": {"type": "string", "enum": ["create", "get", "edit", "comment", "list"],
                          "default": "create",
                          "description": "issue: create, get, edit, comment; merge_request: "
                                         "list; file: get, create; release: create."},
            "project": {"type": "string", "minLength": 1,
                        "description": "The project's id (`42`) or path (`group/project`)."},
            "issue_iid": {"type": "integer", "minimum": 1,
                          "description": "issue get, edit, comment: the issue's number in "
                                         "the project (its iid)."},
            "title": {"type": "string", "minLength": 1,
                      "description": "issue create, edit: the title."},
            "description": {"type": "string",
                            "description": "issue create, edit: the description; release "
                                           "create: the notes (Markdown)."},
            "labels": {"type": "array", "items": {"type": "string", "minLength": 1},
                       "description": "issue create, edit: label names (edit: replaces them)."},
            "assignee_ids": {"type": "array", "items": {"type": "integer", "minimum": 1},
                             "description": "issue create, edit: user ids (edit: replaces "
                                            "them)."},
            "state_event": {"type": "string", "enum": ["close", "reopen"],
                            "description": "issue edit: close or reopen the issue."},
            "body": {"type": "string", "minLength": 1,
                     "description": "issue comment: the note (Markdown)."},
            "state": {"type": "string", "enum": ["opened", "closed", "locked", "merged", "all"],
                      "default": "opened",
                      "description": "merge_request list: which merge requests."},
            "file_path": {"type": "string", "minLength": 1,
                          "description": "file: the path in the repository, e.g. `docs/a.md`."},
            "ref": {"type": "string", "minLength": 1,
                    "description": "file get: the branch, tag or commit (default HEAD, the "
                                   "default branch); release create: the branch or commit a "
                                   "new tag points at."},
            "branch": {"type": "string", "minLength": 1,
                       "description": "file create: the branch to commit to."},
            "commit_message": {"type": "string", "minLength": 1,
                               "description": "file create: the commit message."},
            "file_content": {"type": "string",
                             "description": "file create: the file's text (unset: the "
                                            "item's binary `binary_property`)."},
            "as_binary": {"type": "boolean", "default": False,
                          "description": "file get: put the bytes in the binary "
                                         "`binary_property` instead of `text`."},
            "binary_property": {"type": "string", "minLength": 1, "default": "data",
                                "description": "file: the item's binary read or written."},
            "tag_name": {"type": "string", "minLength": 1,
                         "description": "release create: the tag (created from `ref` if "
                                        "absent)."},
            "release_name": {"type": "string",
                             "description": "release create: the title (default: the tag)."},
            **LIST_PARAMETERS,
            "extra": {"type": "object", "additionalProperties": True, "default": {},
                      "description": "More fields of the request (body, or query for list), "
                                     "sent as they are (e.g. `milestone_id`, `order_by`)."},
            "timeout_s": TIMEOUT_PARAMETER,
        },
        "required": ["resource", "operation", "project"],
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
                raise NodeError(f"gitlab: {resource} has no operation {operation!r}")
            if rest is None:
                data = await ctx.credential("gitlab")
                rest = _api(ctx.http(), data, ctx.now, params.number("timeout_s", index))
            name = f"{resource.replace('_', ' ')} {operation}"
            call = _Call(ctx, rest, params, item, index, name)
            return await _OPERATIONS[(resource, operation)](call)

        return await amap_items(ctx, apply)


def _segment(value: str) -> str:
    """One path segment, URL-encoded (slashes too), whether `value` came encoded or not."""
    return quote(unquote(value.strip("/")), safe="")


class _Call:
    """One item's operation: what every operation function needs."""

    def __init__(
        self, ctx: NodeContext, rest: Rest, params: Params, item: Item, index: int, name: str
    ) -> None:
        self.ctx, self.rest, self.params, self.item, self.index = ctx, rest, params, item, index
        self.name = name
        self.project = f"/projects/{_segment(params.text('project', index))}"

    def out(self, json: JsonObject) -> list[Item]:
        return [self.item.derive(json, self.index)]

    def fields(self, *names: str) -> JsonObject:
        """The parameters `names` that are set, and `extra`, as a request body."""
        body: JsonObject = dict(self.params.mapping("extra", self.index))
        for name in names:
            value = self.params.get(name, self.index)
            if value is not None:
                body[name] = value
        if isinstance(body.get("labels"), list):  # GitLab takes labels comma-separated
            body["labels"] = ",".join(map(str, body["labels"]))
        return body

    async def send(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self.rest.call(self.name, method, self.project + path, **kwargs)).body


async def _issue_create(call: _Call) -> list[Item]:
    body = call.fields("title", "description", "labels", "assignee_ids")
    return call.out(await call.send("POST", "/issues", json=body))


def _issue_path(call: _Call) -> str:
    return f"/issues/{call.params.integer('issue_iid', call.index)}"


async def _issue_get(call: _Call) -> list[Item]:
    return call.out(await call.send("GET", _issue_path(call)))


async def _issue_edit(call: _Call) -> list[Item]:
    body = call.fields("title", "description", "labels", "assignee_ids", "state_event")
    return call.out(await call.send("PUT", _issue_path(call), json=body))


async def _issue_comment(call: _Call) -> list[Item]:
    body = call.fields("body")
    return call.out(await call.send("POST", f"{_issue_path(call)}/notes", json=body))


async def _merge_request_list(call: _Call) -> list[Item]:
    params, index = call.params, call.index
    limit = list_limit(params.flag("return_all", index), params.integer("limit", index))
    origin = _origin(call.rest.base)
    query = {**params.mapping("extra", index), "state": params.get("state", index)}
    path = f"{call.project}/merge_requests"
    # One page size for every page: x-next-page counts pages of the first one's size.
    size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit)

    async def page(cursor: str | None, _wanted: int | None) -> Page:
        if cursor is None or cursor.isdigit():
            answer = await call.rest.call(
                call.name, "GET", path, params={**query, "per_page": size, "page": cursor}
            )
        else:
            if _origin(cursor) != origin:
                raise call.rest.error(call.name, "the next page is on another host; not followed")
            answer = await call.rest.call(call.name, "GET", cursor, absolute=True)
        if not isinstance(answer.body, list):
            raise call.rest.error(call.name, "the answer is not a list")
        next_page = answer.headers.get("x-next-page", "").strip()
        return answer.body, answer.links.get("next") or (next_page if next_page.isdigit() else None)

    records = await collect(page, limit)
    return [call.item.derive(record, index) for record in records]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _file_path(call: _Call) -> str:
    return "/repository/files/" + _segment(call.params.text("file_path", call.index))


async def _file_get(call: _Call) -> list[Item]:
    ref = call.params.optional_text("ref", call.index) or "HEAD"
    found = await call.send("GET", _file_path(call), params={"ref": ref})
    if not isinstance(found, dict) or not isinstance(found.get("content"), str):
        raise call.rest.error(call.name, "the answer has no file content")
    if found.get("encoding") != "base64":
        raise call.rest.error(call.name, f"the content's encoding is {found.get('encoding')!r}")
    try:
        content = base64.b64decode(found["content"], validate=False)
    except ValueError:
        raise call.rest.error(call.name, "the file's content is not base64") from None
    json = {key: value for key, value in found.items() if key not in {"content", "encoding"}}
    binary = dict(call.item.binary or {})
    if call.params.flag("as_binary", call.index):
        name = str(found.get("file_name") or "file")
        stored = await call.ctx.blobs.put(content, file_name=name)
        binary[call.params.text("binary_property", call.index)] = stored.to_json()
    else:
        try:
            json["text"] = content.decode("utf-8")
        except UnicodeDecodeError:
            raise call.rest.error(call.name, "the file is not UTF-8 text; use as_binary") from None
    return [Item(json=json, paired=(Pair(0, call.index),), binary=binary or None)]


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
            raise NodeError(f"gitlab file create: the item has no binary {name!r} and "
                            f"file_content is unset (it has: {have})")  # fmt: skip
        ref = BinaryRef.from_json(raw)
        if ref.size > MAX_FILE_BYTES:
            raise NodeError(f"gitlab file create: the file is larger than {MAX_FILE_BYTES} bytes")
        content = await call.ctx.blobs.get(ref)
    body = call.fields("branch", "commit_message")
    body["encoding"] = "base64"
    body["content"] = base64.b64encode(content).decode("ascii")
    return call.out(await call.send("POST", _file_path(call), json=body))


async def _release_create(call: _Call) -> list[Item]:
    body = call.fields("tag_name", "ref", "description")
    name = call.params.optional_text("release_name", call.index)
    if name is not None:
        body["name"] = name
    return call.out(await call.send("POST", "/releases", json=body))


_OPERATIONS: Final[Mapping[tuple[str, str], Callable[[_Call], Awaitable[list[Item]]]]] = {
    ("issue", "create"): _issue_create, ("issue", "get"): _issue_get,
    ("issue", "edit"): _issue_edit, ("issue", "comment"): _issue_comment,
    ("merge_request", "list"): _merge_request_list,
    ("file", "get"): _file_get, ("file", "create"): _file_create,
    ("release", "create"): _release_create,
}  # fmt: skip

NODES: tuple[type[Node], ...] = (GitLab,)
CREDENTIALS: tuple[CredentialType, ...] = (GITLAB_CREDENTIAL,)

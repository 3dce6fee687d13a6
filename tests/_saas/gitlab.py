"""A fake of GitLab's REST API v4 (https://docs.gitlab.com/ee/api/rest/) on loopback.

What it speaks, as GitLab does: `PRIVATE-TOKEN: <token>` (anything else: 401
`{"message": "401 Unauthorized"}`); a project by id (`42`) or URL-encoded path
(`octo-group%2Fhello`), a file path URL-encoded as one segment; errors as
`{"message": "404 Not found"}`, `{"error": "title is missing"}` (a missing
parameter) or `{"message": {"field": ["problem"]}}` (validation); 201 for what a POST
creates; lists paged by `per_page` and `page` with the `x-page`, `x-next-page`,
`x-total` headers and a `Link` header; the repository files API with base64 content.
Rate limits are staged by a test (`rate_limited`): a plain-text 429 with
`Retry-After` and the `RateLimit-*` headers.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import unquote, urlencode

from tests._saas._base import FakeApi, Recorded, Reply, body_json, run_fake

__all__ = ["PROJECT", "PROJECT_ID", "TOKEN", "FakeGitLab", "fake_gitlab", "rate_limited"]

TOKEN: Final = "glpat-LOOPBACKfakeTokenForTests"
PROJECT: Final = "octo-group/hello"
PROJECT_ID: Final = 42
WEB: Final = f"https://gitlab.example/{PROJECT}"
_PROJECT_PATH = re.compile(r"/api/v4/projects/([^/]+)(/.*)?")


def rate_limited(*, retry_after_s: int | None = None, reset_epoch: int | None = None) -> Reply:
    headers = {"RateLimit-Limit": "600", "RateLimit-Remaining": "0",
               "RateLimit-Name": "throttle_authenticated_api"}  # fmt: skip
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    if reset_epoch is not None:
        headers["RateLimit-Reset"] = str(reset_epoch)
    return Reply(429, "Retry later\n", headers, "text/plain")


def _error(status: int, message: Any) -> Reply:
    return Reply.json({"message": message}, status)


def _missing(name: str) -> Reply:
    return Reply.json({"error": f"{name} is missing"}, 400)


class FakeGitLab(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.issues: dict[int, dict[str, Any]] = {}
        self.notes: list[dict[str, Any]] = []
        self.merge_requests: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {"README.md": b"# hello\n"}
        self.commits: list[dict[str, Any]] = []
        self.tags: set[str] = {"v1.0.0"}
        self.releases: list[dict[str, Any]] = []
        self._ids = itertools.count(5000)
        self._iids = itertools.count(1)

    @property
    def api(self) -> str:
        """The credential's base_url."""
        return self.url + "/api/v4"

    def add_merge_request(self, title: str, state: str = "opened") -> dict[str, Any]:
        iid = len(self.merge_requests) + 1
        merge_request = {"id": next(self._ids), "iid": iid, "project_id": PROJECT_ID,
                         "title": title, "state": state, "source_branch": f"feature-{iid}",
                         "target_branch": "main", "author": {"username": "ada"},
                         "web_url": f"{WEB}/-/merge_requests/{iid}"}  # fmt: skip
        self.merge_requests.append(merge_request)
        return merge_request

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method, "/api/v4" + path)]

    # -- the API ----------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        if request.headers.get("private-token") != TOKEN:
            return _error(401, "401 Unauthorized")
        if (request.method, request.path) == ("GET", "/api/v4/user"):
            return Reply.json({"id": 1, "username": "linkflow-bot", "name": "LinkFlow Bot",
                               "state": "active"})  # fmt: skip
        match = _PROJECT_PATH.fullmatch(request.path)
        if match is None:
            return _error(404, "404 Not Found")
        if unquote(match.group(1)) not in (str(PROJECT_ID), PROJECT):
            return _error(404, "404 Project Not Found")
        rest = match.group(2) or ""
        body = body_json(request) or {}
        if rest.startswith("/repository/files/"):
            return self._files(request, unquote(rest.removeprefix("/repository/files/")), body)
        route = (request.method, *rest.strip("/").split("/"))
        if route == ("POST", "issues"):
            return self._create_issue(body)
        if len(route) >= 3 and route[1] == "issues" and route[2].isdigit():
            return self._issue(route, body)
        if route == ("GET", "merge_requests"):
            return self._list_merge_requests(request)
        if route == ("POST", "releases"):
            return self._create_release(body)
        return _error(404, "404 Not Found")

    def _issue(self, route: tuple[str, ...], body: dict[str, Any]) -> Reply:
        issue = self.issues.get(int(route[2]))
        if issue is None:
            return _error(404, "404 Not found")
        if route == ("GET", "issues", route[2]):
            return Reply.json(issue)
        if route == ("PUT", "issues", route[2]):
            return self._edit_issue(issue, body)
        if route == ("POST", "issues", route[2], "notes"):
            return self._note(issue, body)
        return _error(404, "404 Not Found")

    def _create_issue(self, body: dict[str, Any]) -> Reply:
        if "title" not in body:
            return _missing("title")
        if len(str(body["title"])) > 255:
            return _error(400, {"title": ["is too long (maximum is 255 characters)"]})
        iid = next(self._iids)
        issue = {
            "id": next(self._ids), "iid": iid, "project_id": PROJECT_ID,
            "title": body["title"], "description": body.get("description"), "state": "opened",
            "labels": [name for name in str(body.get("labels", "")).split(",") if name],
            "assignees": [{"id": user} for user in body.get("assignee_ids", [])],
            "author": {"username": "linkflow-bot"}, "user_notes_count": 0,
            "web_url": f"{WEB}/-/issues/{iid}",
        }  # fmt: skip
        self.issues[iid] = issue
        return Reply.json(issue, 201)

    def _edit_issue(self, issue: dict[str, Any], body: dict[str, Any]) -> Reply:
        event = body.get("state_event")
        if event not in (None, "close", "reopen"):
            return Reply.json({"error": "state_event does not have a valid value"}, 400)
        for key in ("title", "description"):
            if key in body:
                issue[key] = body[key]
        if "labels" in body:
            issue["labels"] = [name for name in str(body["labels"]).split(",") if name]
        if "assignee_ids" in body:
            issue["assignees"] = [{"id": user} for user in body["assignee_ids"]]
        if event is not None:
            issue["state"] = "closed" if event == "close" else "opened"
        return Reply.json(issue)

    def _note(self, issue: dict[str, Any], body: dict[str, Any]) -> Reply:
        if "body" not in body:
            return _missing("body")
        note = {"id": next(self._ids), "body": body["body"],
                "author": {"username": "linkflow-bot"}, "noteable_type": "Issue",
                "noteable_iid": issue["iid"], "system": False}  # fmt: skip
        self.notes.append(note)
        issue["user_notes_count"] += 1
        return Reply.json(note, 201)

    def _list_merge_requests(self, request: Recorded) -> Reply:
        query = {key: values[-1] for key, values in request.query.items()}
        state = query.get("state", "all")
        found = [m for m in self.merge_requests if state == "all" or m["state"] == state]
        per_page = min(int(query.get("per_page", 20)), 100)
        page = int(query.get("page", 1))
        chunk = found[(page - 1) * per_page : page * per_page]
        pages = max((len(found) + per_page - 1) // per_page, 1)
        base = self.url + request.path
        links = [f'<{base}?{urlencode({**query, "page": 1})}>; rel="first"',
                 f'<{base}?{urlencode({**query, "page": pages})}>; rel="last"']  # fmt: skip
        if page < pages:
            links.insert(0, f'<{base}?{urlencode({**query, "page": page + 1})}>; rel="next"')
        headers = {"Link": ", ".join(links), "x-page": str(page), "x-per-page": str(per_page),
                   "x-next-page": str(page + 1) if page < pages else "",
                   "x-total": str(len(found)), "x-total-pages": str(pages)}  # fmt: skip
        return Reply.json(chunk, 200, **headers)

    def _file(self, path: str, ref: str) -> dict[str, Any]:
        content = self.files[path]
        return {"file_name": path.rsplit("/", 1)[-1], "file_path": path, "size": len(content),
                "encoding": "base64", "content": base64.b64encode(content).decode(),
                "content_sha256": hashlib.sha256(content).hexdigest(), "ref": ref,
                "blob_id": hashlib.sha1(content, usedforsecurity=False).hexdigest(),
                "commit_id": "d5a3ff139356ce33e37e73add446f16869741b50",
                "last_commit_id": "570e7b2abdd848b95f2f578043fc23bd6f6fd24d"}  # fmt: skip

    def _files(self, request: Recorded, path: str, body: dict[str, Any]) -> Reply:
        if request.method == "GET":
            ref = request.query.get("ref", [""])[-1]
            if not ref:
                return _missing("ref")
            if path not in self.files:
                return _error(404, "404 File Not Found")
            return Reply.json(self._file(path, ref))
        if request.method != "POST":
            return _error(404, "404 Not Found")
        for name in ("branch", "commit_message", "content"):
            if name not in body:
                return _missing(name)
        if path in self.files:
            return _error(400, "A file with this name already exists")
        if body.get("encoding") == "base64":
            try:
                content = base64.b64decode(str(body["content"]), validate=True)
            except ValueError:
                return _error(400, "Invalid base64")
        else:
            content = str(body["content"]).encode()
        self.files[path] = content
        self.commits.append({"branch": body["branch"], "message": body["commit_message"]})
        return Reply.json({"file_path": path, "branch": body["branch"]}, 201)

    def _create_release(self, body: dict[str, Any]) -> Reply:
        tag = body.get("tag_name")
        if not tag:
            return _missing("tag_name")
        if any(r["tag_name"] == tag for r in self.releases):
            return _error(409, "Release already exists")
        if tag not in self.tags:
            if not body.get("ref"):
                return _error(422, "Ref is not specified")
            self.tags.add(tag)
        release = {"tag_name": tag, "name": body.get("name") or tag,
                   "description": body.get("description"), "created_at": "2026-01-02T03:04:05Z",
                   "commit": {"id": "d5a3ff139356ce33e37e73add446f16869741b50"},
                   "_links": {"self": f"{WEB}/-/releases/{tag}"}}  # fmt: skip
        self.releases.append(release)
        return Reply.json(release, 201)


@contextmanager
def fake_gitlab() -> Iterator[FakeGitLab]:
    with run_fake(FakeGitLab()) as fake:
        yield fake

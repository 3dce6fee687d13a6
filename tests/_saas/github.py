"""A fake of GitHub's REST API (https://docs.github.com/rest) on loopback.

What it speaks, as GitHub does: `Authorization: Bearer <token>` (or `token <token>`;
anything else: 401 "Bad credentials"); JSON bodies; `{"message", "errors"?,
"documentation_url", "status"}` errors (404 "Not Found", 422 "Validation Failed" with
`errors` entries of resource/field/code); 201 for what a POST creates; lists paged by
`per_page` and `page` with a `Link` header (`rel="next"`, `rel="last"`); the contents
API with base64 content wrapped at 60 columns, blob shas as git computes them, and a
`sha` required to replace a file. Rate limits are staged by a test: `primary_limit`
(403, `x-ratelimit-remaining: 0`, `x-ratelimit-reset`), `secondary_limit` (403 with
Retry-After) and a plain 429.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import urlencode

from tests._saas._base import FakeApi, Recorded, Reply, body_json, run_fake

__all__ = ["OWNER", "REPO", "TOKEN", "FakeGitHub", "blob_sha", "fake_github", "primary_limit",
           "secondary_limit"]  # fmt: skip

TOKEN: Final = "github_pat_11LOOPBACK0000_fakeTokenForTheTests"
OWNER: Final = "octo-org"
REPO: Final = "hello"
DOCS: Final = "https://docs.github.com/rest"
_REPO_PATH = re.compile(r"/repos/([^/]+)/([^/]+)(/.*)?")


def blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def primary_limit(reset_epoch: int) -> Reply:
    return Reply.json({"message": "API rate limit exceeded for user ID 1.",
                       "documentation_url": DOCS, "status": "403"}, 403,
                      **{"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                         "x-ratelimit-reset": str(reset_epoch)})  # fmt: skip


def secondary_limit(retry_after_s: int) -> Reply:
    return Reply.json({"message": "You have exceeded a secondary rate limit. Please wait a few "
                                  "minutes before you try again.", "documentation_url": DOCS,
                       "status": "403"}, 403, **{"Retry-After": str(retry_after_s)})  # fmt: skip


def _error(status: int, message: str, **extra: Any) -> Reply:
    return Reply.json({"message": message, "documentation_url": DOCS, "status": str(status),
                       **extra}, status)  # fmt: skip


def _invalid(resource: str, field: str, code: str) -> Reply:
    return _error(422, "Validation Failed",
                  errors=[{"resource": resource, "field": field, "code": code}])  # fmt: skip


class FakeGitHub(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.issues: dict[int, dict[str, Any]] = {}
        self.comments: list[dict[str, Any]] = []
        self.pulls: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {"README.md": b"# hello\n"}
        self.commits: list[dict[str, Any]] = []
        self.releases: list[dict[str, Any]] = []
        self._ids = itertools.count(1000)
        self._numbers = itertools.count(1)

    def add_pull(self, title: str, state: str = "open") -> dict[str, Any]:
        number = next(self._numbers)
        pull = {"id": next(self._ids), "number": number, "title": title, "state": state,
                "user": {"login": "ada"}, "head": {"ref": f"feature-{number}"},
                "base": {"ref": "main"},
                "html_url": f"https://github.com/{OWNER}/{REPO}/pull/{number}"}  # fmt: skip
        self.pulls.append(pull)
        return pull

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    # -- the API ----------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        auth = request.headers.get("authorization", "")
        if auth not in (f"Bearer {TOKEN}", f"token {TOKEN}"):
            return _error(401, "Bad credentials")
        if (request.method, request.path) == ("GET", "/user"):
            return Reply.json({"login": "linkflow-bot", "id": 1, "type": "User"})
        match = _REPO_PATH.fullmatch(request.path)
        if match is None or (match.group(1), match.group(2)) != (OWNER, REPO):
            return _error(404, "Not Found")
        rest = match.group(3) or ""
        body = body_json(request) or {}
        if rest.startswith("/contents/"):
            return self._contents(request, rest.removeprefix("/contents/"), body)
        route = (request.method, *rest.strip("/").split("/"))
        if route == ("POST", "issues"):
            return self._create_issue(body)
        if len(route) >= 3 and route[1] == "issues" and route[2].isdigit():
            return self._issue(route, body)
        if route == ("GET", "pulls"):
            return self._list_pulls(request)
        if route == ("POST", "releases"):
            return self._create_release(body)
        return _error(404, "Not Found")

    def _issue(self, route: tuple[str, ...], body: dict[str, Any]) -> Reply:
        issue = self.issues.get(int(route[2]))
        if issue is None:
            return _error(404, "Not Found")
        if route == ("GET", "issues", route[2]):
            return Reply.json(issue)
        if route == ("PATCH", "issues", route[2]):
            return self._edit_issue(issue, body)
        if route == ("POST", "issues", route[2], "comments"):
            return self._comment(issue, body)
        return _error(404, "Not Found")

    def _create_issue(self, body: dict[str, Any]) -> Reply:
        if not body.get("title"):
            return _invalid("Issue", "title", "missing_field")
        number = next(self._numbers)
        issue = {
            "id": next(self._ids), "number": number, "title": body["title"],
            "body": body.get("body"), "state": "open", "state_reason": None,
            "labels": [{"name": name} for name in body.get("labels", [])],
            "assignees": [{"login": login} for login in body.get("assignees", [])],
            "user": {"login": "linkflow-bot"}, "comments": 0,
            "url": f"https://api.github.com/repos/{OWNER}/{REPO}/issues/{number}",
            "html_url": f"https://github.com/{OWNER}/{REPO}/issues/{number}",
        }  # fmt: skip
        self.issues[number] = issue
        return Reply.json(issue, 201)

    def _edit_issue(self, issue: dict[str, Any], body: dict[str, Any]) -> Reply:
        if body.get("state") not in (None, "open", "closed"):
            return _invalid("Issue", "state", "invalid")
        for key in ("title", "body", "state"):
            if key in body:
                issue[key] = body[key]
        if "labels" in body:
            issue["labels"] = [{"name": name} for name in body["labels"]]
        if "assignees" in body:
            issue["assignees"] = [{"login": login} for login in body["assignees"]]
        if body.get("state") == "closed":
            issue["state_reason"] = body.get("state_reason", "completed")
        return Reply.json(issue)

    def _comment(self, issue: dict[str, Any], body: dict[str, Any]) -> Reply:
        if not body.get("body"):
            return _invalid("IssueComment", "body", "missing_field")
        anchor = f"#issuecomment-{len(self.comments) + 1}"
        comment = {"id": next(self._ids), "body": body["body"], "user": {"login": "linkflow-bot"},
                   "issue_url": issue["url"], "html_url": issue["html_url"] + anchor}  # fmt: skip
        self.comments.append(comment)
        issue["comments"] += 1
        return Reply.json(comment, 201)

    def _list_pulls(self, request: Recorded) -> Reply:
        query = {key: values[-1] for key, values in request.query.items()}
        state = query.get("state", "open")
        found = [p for p in self.pulls if state == "all" or p["state"] == state]
        per_page = min(int(query.get("per_page", 30)), 100)
        page = int(query.get("page", 1))
        chunk = found[(page - 1) * per_page : page * per_page]
        last = max((len(found) + per_page - 1) // per_page, 1)
        links = []
        base = self.url + request.path
        if page < last:
            links.append(f'<{base}?{urlencode({**query, "page": page + 1})}>; rel="next"')
            links.append(f'<{base}?{urlencode({**query, "page": last})}>; rel="last"')
        headers = {"Link": ", ".join(links)} if links else {}
        return Reply.json(chunk, 200, **headers)

    def _file(self, path: str) -> dict[str, Any]:
        content = self.files[path]
        return {"type": "file", "name": path.rsplit("/", 1)[-1], "path": path,
                "sha": blob_sha(content), "size": len(content),
                "url": f"https://api.github.com/repos/{OWNER}/{REPO}/contents/{path}",
                "html_url": f"https://github.com/{OWNER}/{REPO}/blob/main/{path}",
                "download_url": f"https://raw.example/{OWNER}/{REPO}/main/{path}"}  # fmt: skip

    def _contents(self, request: Recorded, path: str, body: dict[str, Any]) -> Reply:
        if request.method == "GET":
            if path in self.files:
                encoded = base64.b64encode(self.files[path]).decode()
                wrapped = "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60))
                return Reply.json({**self._file(path), "encoding": "base64",
                                   "content": wrapped + "\n"})  # fmt: skip
            inside = [name for name in self.files if name.startswith(path.rstrip("/") + "/")]
            if inside:
                return Reply.json([{**self._file(name), "content": None} for name in inside])
            return _error(404, "Not Found")
        if request.method != "PUT":
            return _error(404, "Not Found")
        if not body.get("message"):
            return _invalid("Commit", "message", "missing_field")
        if path in self.files:
            if not body.get("sha"):
                return _error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
            if body["sha"] != blob_sha(self.files[path]):
                return _error(409, f"{path} does not match {body['sha']}")
        try:
            content = base64.b64decode(str(body.get("content", "")), validate=True)
        except ValueError:
            return _error(422, "content is not valid Base64")
        created = path not in self.files
        self.files[path] = content
        commit = {"sha": hashlib.sha1(f"commit {len(self.commits)}".encode(),
                                      usedforsecurity=False).hexdigest(),
                  "message": body["message"], "branch": body.get("branch", "main")}  # fmt: skip
        self.commits.append(commit)
        return Reply.json({"content": self._file(path), "commit": commit}, 201 if created else 200)

    def _create_release(self, body: dict[str, Any]) -> Reply:
        tag = body.get("tag_name")
        if not tag:
            return _invalid("Release", "tag_name", "missing_field")
        if any(r["tag_name"] == tag for r in self.releases):
            return _invalid("Release", "tag_name", "already_exists")
        release_id = next(self._ids)
        release = {"id": release_id, "tag_name": tag, "name": body.get("name") or tag,
                   "body": body.get("body"), "draft": bool(body.get("draft")),
                   "prerelease": bool(body.get("prerelease")),
                   "target_commitish": body.get("target_commitish", "main"),
                   "html_url": f"https://github.com/{OWNER}/{REPO}/releases/tag/{tag}",
                   "upload_url": f"https://uploads.github.com/repos/{OWNER}/{REPO}/releases/"
                                 f"{release_id}/assets{{?name,label}}"}  # fmt: skip
        self.releases.append(release)
        return Reply.json(release, 201)


@contextmanager
def fake_github() -> Iterator[FakeGitHub]:
    with run_fake(FakeGitHub()) as fake:
        yield fake

"""Form, multipart and text bodies of webhook calls reach the workflow parsed (issue 14:
`curl -d 'name=Ada&age=40'` arrived as the raw string), through the real app and plane."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from tests.api._plane import PlaneApi, assert_problem, plane_api, webhook_doc

__all__ = ["plane_api"]  # the fixture, imported for pytest


async def seen(plane: PlaneApi, **request: Any) -> Any:
    """What the workflow saw as `body` for a POST with `request` (httpx's arguments)."""
    me = await plane.user()
    flow = await plane.workflow(me, webhook_doc(response_mode="last_node", max_body_bytes=4096),
                                activate=True)  # fmt: skip
    (hook,) = flow["webhooks"]
    answer = await plane.client.post(hook["url"], **request)
    assert answer.status_code == 200, answer.text
    return answer.json()["seen"]


async def test_a_form_post_reaches_the_workflow_as_its_fields(plane_api: PlaneApi) -> None:
    """`curl -d 'name=Ada&age=40&tag=a&tag=b'`: an object, repeated names as lists."""
    body = await seen(plane_api, content=b"name=Ada&age=40&tag=a&tag=b",
                      headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert body == {"name": "Ada", "age": "40", "tag": ["a", "b"]}


async def test_a_multipart_posts_files_become_binaries_in_the_blob_store(
    plane_api: PlaneApi,
) -> None:
    """`curl -F name=Ada -F avatar=@ada.png`: the field is the body; the file is not in it
    (issue 14: it was, inline as base64) but in the blob store, and the stored input refers
    to it under `binary.avatar` with its name, type and size."""
    picture = b"\x89PNG\r\n\x1a\n" + bytes(100)
    me = await plane_api.user()
    flow = await plane_api.workflow(me, webhook_doc(response_mode="last_node"), activate=True)
    (hook,) = flow["webhooks"]
    answer = await plane_api.client.post(
        hook["url"], data={"name": "Ada"}, files={"avatar": ("ada.png", picture, "image/png")}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["seen"] == {"name": "Ada"}
    runs = await plane_api.client.get(
        "/api/v1/executions", params={"workflow_id": flow["id"]}, headers=me.headers
    )
    (run,) = runs.json()["data"]
    detail = await plane_api.client.get(f"/api/v1/executions/{run['id']}", headers=me.headers)
    stored = detail.json()["input"]
    ref = f"sha256:{hashlib.sha256(picture).hexdigest()}"
    avatar = {"ref": ref, "size": len(picture), "mime_type": "image/png", "file_name": "ada.png"}
    assert stored["binary"] == {"avatar": avatar}
    assert base64.b64encode(picture).decode() not in detail.text
    blobs = plane_api.runtime.engine.services.blobs
    assert blobs is not None
    assert await blobs.get(ref) == picture


async def test_a_text_body_reaches_the_workflow_as_text(plane_api: PlaneApi) -> None:
    """`text/plain; charset=iso-8859-1` is decoded by its charset."""
    body = await seen(plane_api, content="Grüße".encode("latin-1"),
                      headers={"content-type": "text/plain; charset=iso-8859-1"})  # fmt: skip
    assert body == "Grüße"


async def test_a_malformed_form_is_a_422_problem_and_starts_nothing(plane_api: PlaneApi) -> None:
    """A multipart body cut short: 422 invalid_multipart; a form that is not UTF-8: 422
    invalid_form; a NUL in a field: 422 unstorable_input (the input check of every run)."""
    me = await plane_api.user()
    flow = await plane_api.workflow(me, webhook_doc(), activate=True)
    (hook,) = flow["webhooks"]
    cut = await plane_api.client.post(
        hook["url"],
        content=b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nhal',
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert_problem(cut, 422, "invalid_multipart")
    form = {"content-type": "application/x-www-form-urlencoded"}
    latin = await plane_api.client.post(hook["url"], content=b"name=%FF", headers=form)
    assert_problem(latin, 422, "invalid_form")
    nul = await plane_api.client.post(hook["url"], content=b"name=a%00b", headers=form)
    assert_problem(nul, 422, "unstorable_input")
    runs = await plane_api.client.get(
        "/api/v1/executions", params={"workflow_id": flow["id"]}, headers=me.headers
    )
    assert runs.json()["data"] == []


async def test_a_form_over_the_body_limit_is_413(plane_api: PlaneApi) -> None:
    """Form and multipart bodies pass the same size limit as JSON, before any parsing."""
    me = await plane_api.user()
    flow = await plane_api.workflow(me, webhook_doc(max_body_bytes=64), activate=True)
    (hook,) = flow["webhooks"]
    big = await plane_api.client.post(hook["url"], files={"f": ("a.bin", bytes(1000))})
    assert_problem(big, 413)

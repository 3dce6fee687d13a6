"""`parse_body`: form, multipart and text bodies of webhook calls (issue 14: a form post
reached the workflow as the raw string)."""

from __future__ import annotations

import base64

import httpx
import pytest

from linkflow.services.errors import Invalid
from linkflow.services.webhook_bodies import parse_body


def multipart(data: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[str, bytes]:
    """A multipart/form-data body as an HTTP client encodes it (httpx, as curl -F would)."""
    request = httpx.Request("POST", "http://x", data=data, files=files)
    return request.headers["content-type"], request.read()


class TestUrlEncodedForms:
    def test_a_form_becomes_an_object_of_its_fields(self) -> None:
        """`curl -d 'name=Ada&age=40'`: the fields, as text, percent-decoded."""
        body = parse_body("application/x-www-form-urlencoded", b"name=Ada+L.&age=40&note=a%26b")
        assert body == {"name": "Ada L.", "age": "40", "note": "a&b"}

    def test_a_repeated_name_gets_the_list_of_its_values(self) -> None:
        """`tag=a&tag=b&tag=c` is `{"tag": ["a", "b", "c"]}`; single names stay values."""
        body = parse_body("application/x-www-form-urlencoded", b"tag=a&one=1&tag=b&tag=c")
        assert body == {"tag": ["a", "b", "c"], "one": "1"}

    def test_empty_values_and_utf8_are_kept(self) -> None:
        """A blank field is "", UTF-8 both raw and percent-encoded is decoded."""
        raw = "empty=&city=Zürich&name=Zo%C3%AB".encode()
        body = parse_body("application/x-www-form-urlencoded; charset=UTF-8", raw)
        assert body == {"empty": "", "city": "Zürich", "name": "Zoë"}

    def test_the_media_type_is_case_insensitive(self) -> None:
        """`Application/X-WWW-Form-Urlencoded` is a form too."""
        assert parse_body("Application/X-WWW-Form-Urlencoded", b"a=1") == {"a": "1"}

    def test_a_form_that_is_not_its_charset_is_invalid_form(self) -> None:
        """Percent-encoded bytes that are not UTF-8: 422 invalid_form, not a garbled value."""
        with pytest.raises(Invalid) as refused:
            parse_body("application/x-www-form-urlencoded", b"name=%FF%FE")
        assert refused.value.code == "invalid_form"


class TestMultipart:
    def test_fields_are_values_and_files_are_described_with_their_bytes(self) -> None:
        """Text fields as text; a file as `{filename, content_type, size, base64}`."""
        picture = bytes(range(256)) * 4
        content_type, raw = multipart(
            {"name": "Ada", "age": "40"}, {"avatar": ("ada.png", picture, "image/png")}
        )
        body = parse_body(content_type, raw)
        assert body["name"] == "Ada"
        assert body["age"] == "40"
        assert body["avatar"] == {
            "filename": "ada.png", "content_type": "image/png", "size": len(picture),
            "base64": base64.b64encode(picture).decode(),
        }  # fmt: skip

    def test_repeated_fields_and_files_get_lists(self) -> None:
        """Two files under one name are a list of two files, in order."""
        boundary = "b0undary"
        raw = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="tag"\r\n\r\nx\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="tag"\r\n\r\ny\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="doc"; filename="a.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\nfirst\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="doc"; filename="b.txt"\r\n'
            f"\r\nsecond\r\n--{boundary}--\r\n"
        ).encode()
        body = parse_body(f"multipart/form-data; boundary={boundary}", raw)
        assert body["tag"] == ["x", "y"]
        assert [(f["filename"], f["content_type"], f["size"]) for f in body["doc"]] == [
            ("a.txt", "text/plain", 5), ("b.txt", "application/octet-stream", 6),
        ]  # fmt: skip
        assert base64.b64decode(body["doc"][1]["base64"]) == b"second"

    def test_a_field_of_binary_bytes_is_kept_as_a_nameless_file(self) -> None:
        """A part without filename whose bytes are not UTF-8 loses nothing."""
        boundary = "zz"
        raw = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"blob\"\r\n\r\n".encode()
            + b"\xff\x00\xfe" + f"\r\n--{boundary}--\r\n".encode()
        )  # fmt: skip
        blob = parse_body(f"multipart/form-data; boundary={boundary}", raw)["blob"]
        assert (blob["filename"], blob["size"], blob["base64"]) == (None, 3, "/wD+")

    @pytest.mark.parametrize(
        ("content_type", "raw"),
        [
            ("multipart/form-data", b"--x\r\n\r\n--x--\r\n"),  # no boundary parameter
            ("multipart/form-data; boundary=x",
             b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\ncut sh"),  # no end
            ("multipart/form-data; boundary=x", b"garbage that is not multipart at all"),
            ("multipart/form-data; boundary=x",
             b"--x\r\nContent-Type: text/plain\r\n\r\nno name\r\n--x--\r\n"),  # no disposition
        ],
        ids=["no-boundary", "cut-short", "not-multipart", "nameless-part"],
    )  # fmt: skip
    def test_a_malformed_multipart_body_is_invalid_multipart(
        self, content_type: str, raw: bytes
    ) -> None:
        """Never a 500 and never the raw bytes: 422 invalid_multipart."""
        with pytest.raises(Invalid) as refused:
            parse_body(content_type, raw)
        assert refused.value.code == "invalid_multipart"


class TestText:
    def test_a_text_body_is_its_text_in_its_charset(self) -> None:
        """`text/plain; charset=latin-1` is decoded as Latin-1, not read as broken UTF-8."""
        assert parse_body("text/plain; charset=iso-8859-1", "Grüße".encode("latin-1")) == "Grüße"
        assert parse_body("text/csv", "a,b\n1,ü\n".encode()) == "a,b\n1,ü\n"

    def test_other_bytes_are_text_when_utf8_else_base64(self) -> None:
        """An unknown type keeps its old reading: UTF-8 text, or `{"base64": ...}`."""
        assert parse_body("application/octet-stream", b"plain") == "plain"
        assert parse_body("", b"\xff\xfe") == {"base64": "//4="}
        assert parse_body("text/plain; charset=nonsense", b"ok") == "ok"

"""`parse_body`: form, multipart and text bodies of webhook calls (issue 14: a form post
reached the workflow as the raw string)."""

from __future__ import annotations

import httpx
import pytest

from linkflow.services.errors import Invalid
from linkflow.services.webhook_bodies import OCTET_STREAM, Upload, parse_body

Files = dict[str, tuple[str, bytes, str]] | list[tuple[str, tuple[str, bytes, str]]]


def multipart(data: dict[str, str], files: Files) -> tuple[str, bytes]:
    """A multipart/form-data body as an HTTP client encodes it (httpx, as curl -F would)."""
    request = httpx.Request("POST", "http://x", data=data, files=files)
    return request.headers["content-type"], request.read()


class TestUrlEncodedForms:
    def test_a_form_becomes_an_object_of_its_fields(self) -> None:
        """`curl -d 'name=Ada&age=40'`: the fields, as text, percent-decoded."""
        raw = b"name=Ada+L.&age=40&note=a%26b"
        body = parse_body("application/x-www-form-urlencoded", raw).value
        assert body == {"name": "Ada L.", "age": "40", "note": "a&b"}

    def test_a_repeated_name_gets_the_list_of_its_values(self) -> None:
        """`tag=a&tag=b&tag=c` is `{"tag": ["a", "b", "c"]}`; single names stay values."""
        body = parse_body("application/x-www-form-urlencoded", b"tag=a&one=1&tag=b&tag=c").value
        assert body == {"tag": ["a", "b", "c"], "one": "1"}

    def test_empty_values_and_utf8_are_kept(self) -> None:
        """A blank field is "", UTF-8 both raw and percent-encoded is decoded."""
        raw = "empty=&city=Zürich&name=Zo%C3%AB".encode()
        body = parse_body("application/x-www-form-urlencoded; charset=UTF-8", raw).value
        assert body == {"empty": "", "city": "Zürich", "name": "Zoë"}

    def test_the_media_type_is_case_insensitive(self) -> None:
        """`Application/X-WWW-Form-Urlencoded` is a form too."""
        assert parse_body("Application/X-WWW-Form-Urlencoded", b"a=1").value == {"a": "1"}

    def test_a_form_that_is_not_its_charset_is_invalid_form(self) -> None:
        """Percent-encoded bytes that are not UTF-8: 422 invalid_form, not a garbled value."""
        with pytest.raises(Invalid) as refused:
            parse_body("application/x-www-form-urlencoded", b"name=%FF%FE")
        assert refused.value.code == "invalid_form"


class TestMultipart:
    def test_fields_are_the_body_and_files_are_uploads_beside_it(self) -> None:
        """Text fields as text in the body; a file is not in the body but an `Upload` named
        for its field, with its file name, type and bytes (issue 14: files were inline)."""
        picture = bytes(range(256)) * 4
        content_type, raw = multipart(
            {"name": "Ada", "age": "40"}, {"avatar": ("ada.png", picture, "image/png")}
        )
        body = parse_body(content_type, raw)
        assert body.value == {"name": "Ada", "age": "40"}
        assert body.files == (Upload("avatar", "ada.png", "image/png", picture),)

    def test_repeated_fields_get_lists_and_repeated_files_numbered_names(self) -> None:
        """Two fields of one name are a list; two files of one name are `doc0`, `doc1` in
        order (n8n's names), a file without a type is application/octet-stream, and a
        `[]` suffix is dropped."""
        boundary = "b0undary"
        raw = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="tag"\r\n\r\nx\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="tag"\r\n\r\ny\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="doc"; filename="a.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\nfirst\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="doc"; filename="b.txt"\r\n'
            f"\r\nsecond\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="pic[]"; filename="c.png"\r\n'
            f"Content-Type: image/png\r\n\r\nthird\r\n--{boundary}--\r\n"
        ).encode()
        body = parse_body(f"multipart/form-data; boundary={boundary}", raw)
        assert body.value == {"tag": ["x", "y"]}
        assert body.files == (
            Upload("doc0", "a.txt", "text/plain", b"first"),
            Upload("doc1", "b.txt", "application/octet-stream", b"second"),
            Upload("pic", "c.png", "image/png", b"third"),
        )

    def test_a_numbered_name_skips_a_name_another_file_has(self) -> None:
        """Files `doc`, `doc` and `doc0`: the single `doc0` keeps its name, the pair are
        `doc1` and `doc2`; no binary replaces another."""
        content_type, raw = multipart(
            {}, [("doc", ("a", b"1", "text/plain")), ("doc0", ("z", b"0", "text/plain")),
                 ("doc", ("b", b"2", "text/plain"))],
        )  # fmt: skip
        names = {upload.name: upload.data for upload in parse_body(content_type, raw).files}
        assert names == {"doc0": b"0", "doc1": b"1", "doc2": b"2"}

    def test_a_field_of_binary_bytes_is_kept_as_a_nameless_file(self) -> None:
        """A part without filename whose bytes are not UTF-8 loses nothing."""
        boundary = "zz"
        raw = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"blob\"\r\n\r\n".encode()
            + b"\xff\x00\xfe" + f"\r\n--{boundary}--\r\n".encode()
        )  # fmt: skip
        body = parse_body(f"multipart/form-data; boundary={boundary}", raw)
        assert body.value == {}
        assert body.files == (Upload("blob", None, OCTET_STREAM, b"\xff\x00\xfe"),)

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
        latin = "Grüße".encode("latin-1")
        assert parse_body("text/plain; charset=iso-8859-1", latin).value == "Grüße"
        assert parse_body("text/csv", "a,b\n1,ü\n".encode()).value == "a,b\n1,ü\n"

    def test_other_bytes_are_text_when_utf8_else_base64(self) -> None:
        """An unknown type keeps its old reading: UTF-8 text, or `{"base64": ...}`."""
        assert parse_body("application/octet-stream", b"plain").value == "plain"
        assert parse_body("", b"\xff\xfe").value == {"base64": "//4="}
        assert parse_body("text/plain; charset=nonsense", b"ok").value == "ok"

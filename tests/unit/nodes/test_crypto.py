"""The crypto node hashes, signs, encodes and makes UUIDs per item."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.nodes._support import NODE, node_problems, run_node


async def _one(parameters: dict[str, Any], item: dict[str, Any] | None = None) -> Any:
    """Run the node over one item and return what it wrote to `data`."""
    result = await run_node("crypto", parameters, [item or {}])
    assert result.status == "completed", result.error
    return result.output_of(NODE)[0]["data"]


class TestHash:
    @pytest.mark.parametrize(
        ("algorithm", "digest"),
        [
            ("md5", "900150983cd24fb0d6963f7d28e17f72"),
            ("sha1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            ("sha256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ],
    )
    async def test_hash_gives_the_hex_digest(self, algorithm: str, digest: str) -> None:
        """Known digests of "abc"."""
        assert await _one({"operation": "hash", "algorithm": algorithm, "value": "abc"}) == digest

    async def test_sha256_is_the_default_algorithm(self) -> None:
        """`algorithm` defaults to sha256 and `operation` to hash."""
        digest = await _one({"value": "abc"})
        assert digest.startswith("ba7816bf")

    async def test_sha512_and_sha384_are_available(self) -> None:
        """The longer SHA-2 digests have the right lengths."""
        assert len(await _one({"algorithm": "sha512", "value": "x"})) == 128
        assert len(await _one({"algorithm": "sha384", "value": "x"})) == 96

    async def test_base64_encoding_of_the_digest(self) -> None:
        """`encoding: base64` writes the digest in base64."""
        digest = await _one({"value": "abc", "encoding": "base64"})
        assert digest == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="

    async def test_a_value_that_is_not_text_is_hashed_as_canonical_json(self) -> None:
        """Objects hash the same whatever their key order."""
        first = await _one({"value": "{{ json.v }}"}, {"v": {"a": 1, "b": 2}})
        second = await _one({"value": "{{ json.v }}"}, {"v": {"b": 2, "a": 1}})
        compact = await _one({"value": '{"a":1,"b":2}'})
        assert first == second == compact

    async def test_the_item_keeps_its_fields_and_gains_the_output_field(self) -> None:
        """The result goes to `output_field`; the rest of the item stays."""
        result = await run_node(
            "crypto", {"value": "{{ json.pw }}", "output_field": "h.pw"}, [{"pw": "abc"}]
        )
        assert result.output_of(NODE) == [
            {
                "pw": "abc",
                "h": {"pw": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
            }
        ]


class TestHmac:
    async def test_hmac_sha256_matches_rfc_4231(self) -> None:
        """RFC 4231 test case 2."""
        parameters = {
            "operation": "hmac",
            "secret": "Jefe",
            "value": "what do ya want for nothing?",
        }
        assert await _one(parameters) == (
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        )

    def test_hmac_needs_a_secret(self) -> None:
        """The secret is named when missing."""
        assert node_problems("crypto", {"operation": "hmac", "value": "x"}) == [
            "secret is required when operation is hmac"
        ]


class TestUuidAndBase64:
    async def test_uuid_comes_from_the_recorded_entropy(self) -> None:
        """Each item gets the next recorded UUID."""
        result = await run_node("crypto", {"operation": "uuid"}, [{}, {}])
        assert [i["data"] for i in result.output_of(NODE)] == [
            "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002",
        ]  # fmt: skip

    async def test_base64_round_trip_of_utf8_text(self) -> None:
        """Encode then decode gives the text back."""
        encoded = await _one({"operation": "base64_encode", "value": "héllo ✓"})
        assert encoded == "aMOpbGxvIOKckw=="
        assert await _one({"operation": "base64_decode", "value": encoded}) == "héllo ✓"

    async def test_base64_decode_accepts_url_safe_text_without_padding(self) -> None:
        """`-`/`_` and missing `=` are common in tokens."""
        assert await _one({"operation": "base64_decode", "value": "Pz8_Pg"}) == "???>"

    @pytest.mark.parametrize(
        ("value", "message"),
        [("not base64!", "parameter 'value' is not valid base64"),
         ("/w==", "parameter 'value' does not decode to UTF-8 text")],
    )  # fmt: skip
    async def test_base64_decode_of_bad_input_fails_naming_the_parameter(
        self, value: str, message: str
    ) -> None:
        """Invalid base64 and binary results are errors for the item."""
        result = await run_node("crypto", {"operation": "base64_decode", "value": value}, [{}])
        assert result.status == "failed"
        assert result.error == {"message": message, "node_id": NODE}

    async def test_with_on_error_output_a_bad_item_goes_to_error(self) -> None:
        """The other items are decoded."""
        result = await run_node(
            "crypto", {"operation": "base64_decode", "value": "{{ json.v }}"},
            [{"v": "YQ=="}, {"v": "%%%"}], on_error="output",
        )  # fmt: skip
        assert result.output_of(NODE) == [{"v": "YQ==", "data": "a"}]
        assert result.output_of(NODE, "error") == [
            {"v": "%%%", "error": {"message": "parameter 'value' is not valid base64"}}
        ]

    def test_hash_needs_a_value(self) -> None:
        """The value is named when missing."""
        assert node_problems("crypto", {"operation": "hash"}) == [
            "value is required when operation is hash"
        ]

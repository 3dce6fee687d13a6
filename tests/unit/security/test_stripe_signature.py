"""The Stripe-Signature check: Stripe's scheme, refusing tampered, stale and unsigned calls."""

from __future__ import annotations

import time

import pytest
import stripe

from linkflow.security.stripe_signature import SignatureRefused, sign, verify

SECRET = "whsec_test_0123456789abcdef"
BODY = b'{"id": "evt_1", "type": "customer.subscription.updated"}'


class TestVerify:
    def test_a_signature_made_as_stripe_makes_it_verifies(self) -> None:
        """Cross-checked with the official library's own verifier, both ways."""
        now = int(time.time())
        header = sign(SECRET, BODY, now)
        assert verify(SECRET, BODY, header) == now
        assert stripe.WebhookSignature.verify_header(BODY.decode(), header, SECRET, 300)
        theirs = f"t={now},v1=" + stripe.WebhookSignature._compute_signature(
            f"{now}.{BODY.decode()}", SECRET
        )
        assert verify(SECRET, BODY, theirs) == now

    def test_any_of_several_v1_signatures_may_match(self) -> None:
        """While a secret is rolled, Stripe sends one v1 per secret."""
        now = int(time.time())
        good = sign(SECRET, BODY, now).split(",")[1]
        header = f"t={now},v1={'0' * 64},{good},v0={'1' * 64}"
        assert verify(SECRET, BODY, header) == now

    def test_a_tampered_body_is_refused(self) -> None:
        header = sign(SECRET, BODY, int(time.time()))
        with pytest.raises(SignatureRefused) as refused:
            verify(SECRET, BODY.replace(b"evt_1", b"evt_2"), header)
        assert refused.value.code == "signature_mismatch"

    def test_another_secret_is_refused(self) -> None:
        header = sign("whsec_other", BODY, int(time.time()))
        with pytest.raises(SignatureRefused, match="matches"):
            verify(SECRET, BODY, header)

    def test_a_stale_signature_is_refused_past_the_tolerance(self) -> None:
        """Five minutes by default; exactly at the boundary still passes."""
        signed_at = 1_700_000_000
        header = sign(SECRET, BODY, signed_at)
        assert verify(SECRET, BODY, header, now=signed_at + 300) == signed_at
        with pytest.raises(SignatureRefused) as refused:
            verify(SECRET, BODY, header, now=signed_at + 301)
        assert refused.value.code == "signature_expired"

    def test_a_v0_signature_alone_is_not_trusted(self) -> None:
        now = int(time.time())
        digest = sign(SECRET, BODY, now).split("v1=")[1]
        with pytest.raises(SignatureRefused) as refused:
            verify(SECRET, BODY, f"t={now},v0={digest}")
        assert refused.value.code == "signature_malformed"

    @pytest.mark.parametrize("header", [None, ""])
    def test_an_unsigned_call_is_refused(self, header: str | None) -> None:
        with pytest.raises(SignatureRefused) as refused:
            verify(SECRET, BODY, header)
        assert refused.value.code == "signature_missing"

    @pytest.mark.parametrize("header", ["garbage", "t=abc,v1=00", "v1=00", "t=1,v1="])
    def test_a_malformed_header_is_refused(self, header: str) -> None:
        with pytest.raises(SignatureRefused) as refused:
            verify(SECRET, BODY, header)
        assert refused.value.code == "signature_malformed"

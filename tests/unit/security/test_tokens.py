"""Access JWTs (HS256, RS256, EdDSA), purpose-bound tokens, API keys, TOTP."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from linkflow.security import apikeys, totp
from linkflow.security.rbac import ApiKeyScope, Permission, Role, permissions_for
from linkflow.security.tokens import AccessTokens, InvalidToken, SignedTokens

SECRET = "s" * 48
TTL = timedelta(minutes=15)


def _pem_pair(private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> tuple[bytes, bytes]:
    return (
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


class TestAccessTokens:
    @pytest.mark.parametrize("algorithm", ["HS256", "RS256", "EdDSA"])
    def test_a_token_verifies_with_its_algorithm(self, algorithm: str) -> None:
        """Claims come back for HS256 and for both key-pair algorithms."""
        if algorithm == "HS256":
            tokens = AccessTokens.hs256(SECRET, TTL)
        else:
            key = (
                ed25519.Ed25519PrivateKey.generate()
                if algorithm == "EdDSA"
                else rsa.generate_private_key(public_exponent=65537, key_size=2048)
            )
            private, public = _pem_pair(key)
            tokens = AccessTokens(
                algorithm=algorithm,
                signing_key=private,  # type: ignore[arg-type]
                verifying_key=public,
                ttl=TTL,
            )
        user, session = uuid.uuid4(), uuid.uuid4()
        token = tokens.issue(user, session)
        assert jwt.get_unverified_header(token)["alg"] == algorithm
        claims = tokens.verify(token)
        assert (claims.user_id, claims.session_id) == (user, session)

    def test_an_expired_token_is_refused(self) -> None:
        """Issued an hour ago with a 15-minute TTL: InvalidToken."""
        tokens = AccessTokens.hs256(SECRET, TTL)
        old = tokens.issue(uuid.uuid4(), uuid.uuid4(), now=datetime.now(UTC) - timedelta(hours=1))
        with pytest.raises(InvalidToken):
            tokens.verify(old)

    def test_alg_none_and_algorithm_confusion_are_refused(self) -> None:
        """An unsigned token, or one signed with HS256 where RS256 is expected."""
        tokens = AccessTokens.hs256(SECRET, TTL)
        claims = jwt.decode(
            tokens.issue(uuid.uuid4(), uuid.uuid4()), options={"verify_signature": False}
        )
        unsigned = jwt.encode(claims, key=None, algorithm="none")
        with pytest.raises(InvalidToken):
            tokens.verify(unsigned)
        private, public = _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        rs = AccessTokens(algorithm="RS256", signing_key=private, verifying_key=public, ttl=TTL)
        with pytest.raises(InvalidToken):
            rs.verify(tokens.issue(uuid.uuid4(), uuid.uuid4()))

    def test_a_token_of_a_previous_secret_verifies_until_it_expires(self) -> None:
        """After a rotation (the old secret listed as previous) an old token verifies;
        new tokens are signed with the new secret; an expired old one is still refused."""
        old = AccessTokens.hs256(SECRET, TTL)
        rotated = AccessTokens.hs256("n" * 48, TTL, previous=[SECRET])
        user, session = uuid.uuid4(), uuid.uuid4()
        assert rotated.verify(old.issue(user, session)).user_id == user
        with pytest.raises(InvalidToken):
            old.verify(rotated.issue(user, session))
        stale = old.issue(user, session, now=datetime.now(UTC) - timedelta(hours=1))
        with pytest.raises(InvalidToken, match="expired"):
            rotated.verify(stale)
        signed = SignedTokens("n" * 48, previous=[SECRET])
        mfa = SignedTokens(SECRET).issue("mfa", {"sub": "x"}, timedelta(minutes=5))
        assert signed.read("mfa", mfa)["sub"] == "x"

    def test_a_purpose_token_is_not_an_access_token(self) -> None:
        """An MFA challenge token cannot be used as an access token, nor for OAuth."""
        signed = SignedTokens(SECRET)
        mfa = signed.issue("mfa", {"sub": str(uuid.uuid4())}, timedelta(minutes=5))
        with pytest.raises(InvalidToken):
            AccessTokens.hs256(SECRET, TTL).verify(mfa)
        with pytest.raises(InvalidToken):
            signed.read("oauth", mfa)
        assert signed.read("mfa", mfa)["sub"]


class TestApiKeys:
    def test_a_key_has_the_documented_shape(self) -> None:
        """lf_ + 12-character prefix + 40-character secret; the prefix finds it."""
        fresh = apikeys.generate_api_key(b"k" * 32)
        assert fresh.key.startswith("lf_")
        assert len(fresh.key) == 55
        assert apikeys.lookup_prefix(fresh.key) == fresh.prefix == fresh.key[:15]
        assert apikeys.key_matches(b"k" * 32, fresh.key, fresh.key_hash)
        assert not apikeys.key_matches(b"other-key", fresh.key, fresh.key_hash)

    @pytest.mark.parametrize(
        "bad", ["", "lf_", "lf_" + "a" * 51, "xx_" + "a" * 52, "lf_" + "a" * 51 + "!"]
    )
    def test_malformed_keys_have_no_prefix(self, bad: str) -> None:
        """Rejected before any lookup."""
        assert apikeys.lookup_prefix(bad) is None


class TestTotp:
    def test_a_code_is_accepted_once_within_drift(self) -> None:
        """Current and adjacent steps match; the step returned refuses a replay."""
        secret = totp.new_totp_secret()
        now = datetime.now(UTC)
        code = pyotp.TOTP(secret).at(now)
        step = totp.verify_totp(secret, code, now=now)
        assert step is not None
        assert totp.verify_totp(secret, code, after_step=step, now=now) is None
        later = pyotp.TOTP(secret).at(now + timedelta(seconds=30))
        assert totp.verify_totp(secret, later, after_step=step, now=now) == step + 1
        stale = pyotp.TOTP(secret).at(now - timedelta(minutes=5))
        assert totp.verify_totp(secret, stale, now=now) is None

    def test_recovery_codes_are_ten_distinct_and_normalised(self) -> None:
        """Case and dashes do not matter to the hash."""
        codes = totp.new_recovery_codes()
        assert len(set(codes)) == 10
        assert totp.hash_recovery_code(codes[0]) == totp.hash_recovery_code(
            codes[0].upper().replace("-", " ")
        )


class TestRbac:
    def test_roles_grow_from_viewer_to_owner(self) -> None:
        """Each role holds everything the role below it holds."""
        order = [Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER]
        for lower, higher in itertools.pairwise(order):
            assert permissions_for(lower) < permissions_for(higher)

    def test_the_policy_table_says_who_does_what(self) -> None:
        """Viewers read, members run and edit, admins manage credentials and members,
        owners delete and bill."""
        assert Permission.WORKFLOWS_READ in permissions_for(Role.VIEWER)
        assert Permission.WORKFLOWS_EXECUTE not in permissions_for(Role.VIEWER)
        assert Permission.WORKFLOWS_WRITE in permissions_for(Role.MEMBER)
        assert Permission.CREDENTIALS_WRITE not in permissions_for(Role.MEMBER)
        assert Permission.CREDENTIALS_WRITE in permissions_for(Role.ADMIN)
        assert Permission.MEMBERS_MANAGE in permissions_for(Role.ADMIN)
        assert Permission.WORKSPACE_DELETE not in permissions_for(Role.ADMIN)
        assert {Permission.WORKSPACE_DELETE, Permission.BILLING_MANAGE} <= permissions_for(
            Role.OWNER
        )

    def test_a_key_gets_the_intersection_of_role_and_scopes(self) -> None:
        """An owner's read-only key cannot write; a viewer's write key still cannot."""
        read_only = permissions_for(Role.OWNER, [ApiKeyScope.WORKFLOWS_READ])
        assert Permission.WORKFLOWS_READ in read_only
        assert Permission.WORKFLOWS_WRITE not in read_only
        viewer_writer = permissions_for(Role.VIEWER, [ApiKeyScope.WORKFLOWS_WRITE])
        assert Permission.WORKFLOWS_WRITE not in viewer_writer
        assert Permission.WORKSPACE_READ in permissions_for(Role.VIEWER, [])

"""The SSRF guard refuses non-public addresses after resolution, on every hop.

Servers here listen on loopback only. To show "an allowed host redirects to a
refused one" without the internet, the policy lets 127.0.0.2 through
(`allowed_networks`) while 127.0.0.1 stays refused: Linux routes all of
127.0.0.0/8 to loopback, so they are two distinct addresses of this machine.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from linkflow.nodes.sdk import NodeError
from linkflow.security.ssrf import AddressPolicy, BlockedRequest, Resolver, guarded_client
from tests._http_server import Recorded, Reply, TestServer, serve

ALLOW_2 = ["127.0.0.2/32"]


def ok(_: Recorded) -> Reply:
    return Reply(200, "ok")


@pytest.fixture
def loopback() -> Iterator[TestServer]:
    """A server on 127.0.0.1 that answers everything, to show refused requests never arrive."""
    with serve({"/": ok}) as server:
        yield server


@pytest.fixture
async def guarded() -> AsyncIterator[httpx.AsyncClient]:
    """A client with the production policy, except that 127.0.0.2 is allowed."""
    client = guarded_client(allow_private=False, allowed_networks=ALLOW_2)
    yield client
    await client.aclose()


def _resolver(answers: dict[str, Sequence[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        try:
            return answers[host]
        except KeyError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None

    return resolve


class TestAddressPolicy:
    @pytest.mark.parametrize(
        ("address", "reason"),
        [
            ("127.0.0.1", "loopback"),
            ("127.1.2.3", "loopback"),
            ("::1", "loopback"),
            ("10.0.0.1", "private network"),
            ("172.16.5.4", "private network"),
            ("192.168.1.1", "private network"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("fd12:3456::1", "unique-local"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to refuse, not to bind
            ("::", "unspecified"),
            ("240.0.0.1", "reserved"),
            ("100.64.0.1", "shared address space"),
            ("::ffff:127.0.0.1", "loopback, as 127.0.0.1 in IPv6 form"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private network"),
            ("64:ff9b::a00:1", "private network, as 10.0.0.1"),
            ("2002:7f00:1::", "loopback, as 127.0.0.1 tunnelled"),
        ],
    )
    def test_non_public_addresses_are_refused_with_their_kind(
        self, address: str, reason: str
    ) -> None:
        """The reason names the kind of address, IPv4-mapped and NAT64 forms included."""
        refusal = AddressPolicy().refusal(ipaddress.ip_address(address))
        assert refusal is not None
        assert reason in refusal

    @pytest.mark.parametrize(
        "address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
    )
    def test_public_addresses_are_allowed(self, address: str) -> None:
        """Public unicast passes, also written as IPv4-mapped IPv6."""
        assert AddressPolicy().refusal(ipaddress.ip_address(address)) is None

    def test_allow_private_allows_everything(self) -> None:
        """LINKFLOW_HTTP_ALLOW_PRIVATE=true turns the address check off."""
        policy = AddressPolicy(allow_private=True)
        assert policy.refusal(ipaddress.ip_address("169.254.169.254")) is None

    def test_allowed_networks_let_only_themselves_through(self) -> None:
        """127.0.0.2 is allowed, 127.0.0.1 still refused."""
        policy = AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),))
        assert policy.refusal(ipaddress.ip_address("127.0.0.2")) is None
        assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is not None


class TestGuardedClient:
    async def test_a_direct_request_to_loopback_is_refused_before_connecting(
        self, guarded: httpx.AsyncClient, loopback: TestServer
    ) -> None:
        """The message names the address and the setting; the server sees nothing."""
        with pytest.raises(BlockedRequest) as caught:
            await guarded.get(loopback.url("/"))
        assert str(caught.value) == (
            "the address 127.0.0.1 is not allowed (loopback); "
            "set LINKFLOW_HTTP_ALLOW_PRIVATE=true to allow it"
        )
        assert loopback.requests == []

    async def test_the_refusal_is_a_non_retryable_node_error(
        self, guarded: httpx.AsyncClient, loopback: TestServer
    ) -> None:
        """Any node using ctx.http() fails for good, not with a retry."""
        with pytest.raises(NodeError) as caught:
            await guarded.get(loopback.url("/"))
        assert caught.value.retryable is False

    async def test_a_host_name_resolving_to_loopback_is_refused(
        self, guarded: httpx.AsyncClient, loopback: TestServer
    ) -> None:
        """`localhost` is checked after DNS resolution, and named in the message."""
        with pytest.raises(
            BlockedRequest, match=re.escape("127.0.0.1 of 'localhost' is not allowed")
        ):
            await guarded.get(loopback.url("/", host="localhost"))
        assert loopback.requests == []

    async def test_a_redirect_from_an_allowed_host_to_loopback_is_refused(
        self, guarded: httpx.AsyncClient, loopback: TestServer
    ) -> None:
        """Every hop is checked: 127.0.0.2 answers, its redirect to 127.0.0.1 is refused."""

        def bounce(_: Recorded) -> Reply:
            return Reply(302, headers={"Location": loopback.url("/")})

        with serve({"/go": bounce}, host="127.0.0.2") as allowed:
            with pytest.raises(BlockedRequest, match=re.escape("127.0.0.1 is not allowed")):
                await guarded.get(allowed.url("/go"), follow_redirects=True)
            assert len(allowed.hits("/go")) == 1
        assert loopback.requests == []

    async def test_an_allowed_host_is_reached(self, guarded: httpx.AsyncClient) -> None:
        """The injectable policy really lets 127.0.0.2 through (the redirect test relies on it)."""
        with serve({"/": ok}, host="127.0.0.2") as allowed:
            response = await guarded.get(allowed.url("/"))
        assert response.status_code == 200

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("http://[::1]:9/", "the address ::1 is not allowed (loopback)"),
            ("http://[::ffff:127.0.0.1]:9/", "(loopback, as 127.0.0.1 in IPv6 form)"),
            ("http://169.254.169.254/latest/meta-data/", "(link-local, e.g. cloud metadata)"),
            ("http://[fd00::1]/", "(unique-local network)"),
            ("http://0.0.0.0:9/", "(unspecified address)"),
            ("http://10.1.2.3/", "(private network)"),
        ],
    )
    async def test_non_public_literals_are_refused_without_traffic(
        self, guarded: httpx.AsyncClient, url: str, shown: str
    ) -> None:
        """IPv6 loopback, IPv4-mapped loopback, cloud metadata...: refused before connecting."""
        with pytest.raises(BlockedRequest) as caught:
            await guarded.get(url)
        assert shown in str(caught.value)

    @pytest.mark.parametrize(
        "url", ["file:///etc/passwd", "file://host/etc/passwd", "ftp://example.com/", "ws://x/"]
    )
    async def test_schemes_other_than_http_and_https_are_refused(
        self, guarded: httpx.AsyncClient, url: str
    ) -> None:
        """file://, ftp://, ws://: refused with a message saying what is allowed."""
        with pytest.raises(BlockedRequest, match="only http:// and https:// URLs are"):
            await guarded.get(url)

    async def test_allow_private_reaches_loopback(self, loopback: TestServer) -> None:
        """With the setting on, 127.0.0.1 and localhost are reachable."""
        client = guarded_client(allow_private=True)
        try:
            assert (await client.get(loopback.url("/"))).text == "ok"
            assert (await client.get(loopback.url("/", host="localhost"))).text == "ok"
        finally:
            await client.aclose()

    async def test_a_redirect_to_another_scheme_is_refused(self, loopback: TestServer) -> None:
        """The scheme check also applies to redirect targets, even with allow_private."""

        def to_file(_: Recorded) -> Reply:
            return Reply(302, headers={"Location": "ftp://127.0.0.1/secret"})

        loopback.routes["/to-ftp"] = to_file
        client = guarded_client(allow_private=True)
        try:
            with pytest.raises(BlockedRequest, match="scheme ftp://"):
                await client.get(loopback.url("/to-ftp"), follow_redirects=True)
        finally:
            await client.aclose()


class TestResolution:
    async def test_the_connection_goes_to_the_vetted_address_under_the_host_name(self) -> None:
        """A name only our resolver knows is reached at the address it was checked as,
        and the server sees the name in the Host header."""
        with serve({"/": ok}, host="127.0.0.2") as server:
            client = guarded_client(
                allow_private=False, allowed_networks=ALLOW_2,
                resolver=_resolver({"service.test": ["127.0.0.2"]}),
            )  # fmt: skip
            try:
                response = await client.get(f"http://service.test:{server.port}/")
            finally:
                await client.aclose()
        assert response.text == "ok"
        assert server.requests[0].headers["host"] == f"service.test:{server.port}"
        assert server.requests[0].client_address == "127.0.0.1"

    async def test_a_name_that_also_resolves_to_a_refused_address_is_refused(self) -> None:
        """One private answer among public ones refuses the host: no luck of the draw."""
        client = guarded_client(
            allow_private=False, allowed_networks=ALLOW_2,
            resolver=_resolver({"mixed.test": ["127.0.0.2", "127.0.0.1"]}),
        )  # fmt: skip
        try:
            with pytest.raises(BlockedRequest, match=re.escape("127.0.0.1 of 'mixed.test'")):
                await client.get("http://mixed.test:9/")
        finally:
            await client.aclose()

    async def test_dns_rebinding_is_caught_on_the_next_connection(self) -> None:
        """The name answers 127.0.0.2, then 127.0.0.1: each connection is resolved and
        checked once, so the second answer is refused rather than connected to."""
        answers = [["127.0.0.2"], ["127.0.0.1"]]

        async def rebinding(host: str, port: int) -> Sequence[str]:
            return answers.pop(0)

        def close(_: Recorded) -> Reply:
            return Reply(200, "first", headers={"Connection": "close"})

        with serve({"/": close}, host="127.0.0.2") as server:
            client = guarded_client(
                allow_private=False, allowed_networks=ALLOW_2, resolver=rebinding
            )
            try:
                url = f"http://rebind.test:{server.port}/"
                assert (await client.get(url)).text == "first"
                with pytest.raises(BlockedRequest, match=re.escape("127.0.0.1 of 'rebind.test'")):
                    await client.get(url)
            finally:
                await client.aclose()
        assert len(server.requests) == 1

    async def test_an_unknown_name_is_a_connect_error(self) -> None:
        """Resolution failures are network errors (retryable for nodes), not refusals."""
        client = guarded_client(allow_private=False, resolver=_resolver({}))
        try:
            with pytest.raises(
                httpx.ConnectError, match=re.escape("cannot resolve 'nowhere.test'")
            ):
                await client.get("http://nowhere.test/")
        finally:
            await client.aclose()


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` (and its key), as PEM files."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip
    return cert_path, key_path


class TestTls:
    async def test_tls_verifies_the_host_name_and_sends_it_as_sni(self, tmp_path: Path) -> None:
        """Connecting to the vetted IP keeps HTTPS intact: the certificate for the name
        verifies, and the server is asked for that name (SNI)."""
        cert, key = _certificate(tmp_path, "service.test")
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert, key)
        seen: list[str | None] = []

        def record_sni(_: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
            seen.append(name)

        server_context.sni_callback = record_sni
        client_context = ssl.create_default_context(cafile=str(cert))
        with serve({"/": ok}, host="127.0.0.2", tls=server_context) as server:
            client = guarded_client(
                allow_private=False, allowed_networks=ALLOW_2, verify=client_context,
                resolver=_resolver({"service.test": ["127.0.0.2"]}),
            )  # fmt: skip
            try:
                response = await client.get(f"https://service.test:{server.port}/")
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.get(f"https://127.0.0.2:{server.port}/")
            finally:
                await client.aclose()
        assert response.text == "ok"
        assert seen[0] == "service.test"

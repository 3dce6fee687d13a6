"""The e-mail integration: the `smtp` node (send, with attachments from the items'
binaries) and the `smtp` credential, on aiosmtplib.

Decisions:
- One SMTP session per activation: connected, upgraded (STARTTLS or
  implicit TLS on port 465) and logged in once, then one message per item.
- The host passes the SSRF guard (`ctx.resolve_host`); the node opens the
  TCP connection to the vetted address itself and hands the socket to
  aiosmtplib, which still verifies the certificate against the host *name*.
- The Message-ID and Date come from the context (`ctx.uuid4()`, `ctx.now()`),
  so a replayed history shows the message that was sent.
- Errors name the operation and the server's reply code; a 4xx reply, a
  dropped connection or a timeout may pass on a retry, a refused login, a
  refused sender or every recipient refused will not. The password is never
  in a message (aiosmtplib does not quote it, and neither does this module).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from typing import Any, ClassVar, Final

import aiosmtplib

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.sdk import (
    BinaryRef,
    CheckContext,
    CredentialField,
    CredentialType,
    Item,
    JsonObject,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    amap_items,
)

__all__ = ["CREDENTIALS", "NODES", "SMTP_CREDENTIAL", "Smtp"]

SMTPS_PORT: Final = 465
"""Implicit TLS (RFC 8314); any other port starts in clear and may upgrade with STARTTLS."""
DEFAULT_TIMEOUT_S: Final = 30.0
"""Connecting and each command: mail servers are slow to greet (tarpitting), not minutes."""
LOCAL_HOSTNAME: Final = "localhost"
"""What EHLO names: aiosmtplib's default (socket.getfqdn) may block the loop on DNS."""
MAX_ATTACHMENT_BYTES: Final = 25 * 1024 * 1024
"""Per message, all attachments: the size most providers accept."""

Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


async def _check(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """Connects, upgrades to TLS as configured, logs in when a username is set, sends NOOP."""
    host, port = str(data["host"]), int(data.get("port") or 587)
    try:
        client = await _session(ctx.resolve_host, data, ctx.timeout_s)
    except NodeError as error:
        raise NodeError(f"SMTP check against {host}:{port} failed: {error.message}") from None
    try:
        await client.noop()
    finally:
        await _quit(client)
    if data.get("username"):
        return f"logged in to {host}:{port} as {data['username']}"
    return f"connected to {host}:{port}"


SMTP_CREDENTIAL: Final = CredentialType(
    "smtp",
    "SMTP",
    "A mail server (port 465: implicit TLS).",
    (
        CredentialField("host", required=True),
        CredentialField("port", "integer", default=587, minimum=1, maximum=65535),
        CredentialField("username"),
        CredentialField("password", secret=True),
        CredentialField("starttls", "boolean", default=True),
    ),
    check=_check,
)

_ADDRESS_LIST: Final = {
    "type": ["string", "array"],
    "items": {"type": "string"},
}


class Smtp(Node):
    type = "smtp"
    display_name = "Email (SMTP)"
    group = NodeGroup.ACTION
    description = (
        "Sends one e-mail per item through an SMTP server (credential slot `smtp`): from "
        "`from_address` to `to` (and `cc`, `bcc`; a list, or a comma-separated string), with "
        "`subject`, a plain `text` body and/or an `html` one. `attachments` names the item's "
        'binaries to attach (`["*"]`: all of them). The item comes out with `message_id`, '
        "the `accepted` recipients and the `rejected` ones with the server's reply."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"smtp": ("smtp",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "operation": {"type": "string", "enum": ["send"], "default": "send",
                          "description": "What to do: send a message."},
            "from_address": {"type": "string", "minLength": 3,
                             "description": "The sender, e.g. `Ada <ada@example.com>`."},
            "to": {**_ADDRESS_LIST, "description": "The recipients."},
            "cc": {**_ADDRESS_LIST, "description": "Copy recipients."},
            "bcc": {**_ADDRESS_LIST, "description": "Blind copy recipients (not in the headers)."},
            "reply_to": {"type": "string", "description": "The Reply-To address."},
            "subject": {"type": "string", "default": "", "description": "The subject line."},
            "text": {"type": "string", "description": "The plain text body."},
            "html": {"type": "string", "description": "The HTML body."},
            "attachments": {"type": "array", "items": {"type": "string"}, "default": [],
                            "description": "Names of the item's binaries to attach; `*`: all."},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 300,
                          "default": DEFAULT_TIMEOUT_S,
                          "description": "Connecting, and each SMTP command."},
        },
        "required": ["from_address", "to"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        if parameters.get("text") is None and parameters.get("html") is None:
            return ["one of text and html is required"]
        return []

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        client: aiosmtplib.SMTP | None = None

        async def send(item: Item, index: int) -> Sequence[Item]:
            nonlocal client
            message, recipients = await _message(ctx, params, item, index)
            if client is None:
                data = await ctx.credential("smtp")
                client = await _session(ctx.resolve_host, data, params.number("timeout_s", index))
            rejected = await _send(client, message, recipients)
            json = {
                **item.json,
                "message_id": message["Message-ID"],
                "accepted": [address for address in recipients if address not in rejected],
                "rejected": rejected,
            }
            return [item.derive(json, index)]

        try:
            return await amap_items(ctx, send)
        finally:
            if client is not None:
                await _quit(client)


def _addresses(value: Any, name: str, index: int) -> list[str]:
    """Bare addresses of a list or a comma-separated string (display names dropped)."""
    if value is None:
        return []
    parts = [value] if isinstance(value, str) else value
    if not isinstance(parts, list) or not all(isinstance(part, str) for part in parts):
        raise NodeError(f"smtp send: {name} must be an address or a list of them",
                        item_index=index)  # fmt: skip
    found = [address for _, address in getaddresses(parts) if address]
    bad = [address for address in found if "@" not in address]
    if bad:
        raise NodeError(f"smtp send: {name} holds {bad[0]!r}, not an e-mail address",
                        item_index=index)  # fmt: skip
    return found


async def _message(
    ctx: NodeContext, params: Params, item: Item, index: int
) -> tuple[EmailMessage, list[str]]:
    sender = params.text("from_address", index)
    to = _addresses(params.get("to", index), "to", index)
    cc = _addresses(params.get("cc", index), "cc", index)
    bcc = _addresses(params.get("bcc", index), "bcc", index)
    if not to + cc + bcc:
        raise NodeError("smtp send: there is no recipient", item_index=index)
    from_address = _addresses(sender, "from_address", index)
    domain = from_address[0].rsplit("@", 1)[-1] if from_address else "linkflow"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    reply_to = params.optional_text("reply_to", index)
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = params.optional_text("subject", index) or ""
    message["Date"] = format_datetime(ctx.now())
    message["Message-ID"] = f"<{ctx.uuid4()}@{domain}>"
    text, html = params.optional_text("text", index), params.optional_text("html", index)
    if text is None and html is None:
        raise NodeError("smtp send: one of text and html is required", item_index=index)
    message.set_content(text if text is not None else "")
    if html is not None:
        if text is None:
            message.clear_content()
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    await _attach(ctx, message, item, params.array("attachments", index), index)
    return message, to + cc + bcc


async def _attach(
    ctx: NodeContext, message: EmailMessage, item: Item, names: list[Any], index: int
) -> None:
    binaries = item.binary or {}
    wanted = list(binaries) if "*" in names else [str(name) for name in names]
    total = 0
    for name in wanted:
        raw = binaries.get(name)
        if raw is None:
            have = ", ".join(sorted(binaries)) or "none"
            raise NodeError(f"smtp send: the item has no binary {name!r} (it has: {have})",
                            item_index=index)  # fmt: skip
        ref = BinaryRef.from_json(raw)
        total += ref.size
        if total > MAX_ATTACHMENT_BYTES:
            raise NodeError(f"smtp send: the attachments exceed {MAX_ATTACHMENT_BYTES} bytes",
                            item_index=index)  # fmt: skip
        content = await ctx.blobs.get(ref)
        maintype, _, subtype = ref.mime_type.partition("/")
        message.add_attachment(content, maintype=maintype or "application",
                               subtype=subtype or "octet-stream",
                               filename=ref.file_name or name)  # fmt: skip


async def _session(resolve: Resolve, data: Mapping[str, Any], timeout_s: float) -> aiosmtplib.SMTP:
    """A connected, upgraded and logged-in session with the credential's server."""
    host, port = str(data["host"]), int(data.get("port") or 587)
    addresses = await resolve(host, port)
    implicit = port == SMTPS_PORT
    sock = await _connected_socket(addresses, port, timeout_s, f"{host}:{port}")
    client = aiosmtplib.SMTP(
        hostname=host, sock=sock, local_hostname=LOCAL_HOSTNAME, timeout=timeout_s,
        use_tls=implicit, start_tls=bool(data.get("starttls")) and not implicit,
    )  # fmt: skip
    try:
        await _smtp("connect", client.connect())
        if data.get("username"):
            await _smtp(
                "login", client.login(str(data["username"]), str(data.get("password") or ""))
            )
    except BaseException:
        client.close()
        sock.close()
        raise
    return client


async def _connected_socket(
    addresses: Sequence[str], port: int, timeout_s: float, where: str
) -> socket.socket:
    loop = asyncio.get_running_loop()
    failure = "no address"
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout_s):
                await loop.sock_connect(sock, (address, port))
        except TimeoutError:
            sock.close()
            failure = "timed out"
        except OSError as error:
            sock.close()
            # asyncio's message is "Connect call failed (...)"; the errno says why.
            failure = os.strerror(error.errno).lower() if error.errno else type(error).__name__
        else:
            return sock
    raise NodeError(f"cannot connect to {where}: {failure}", retryable=True)


async def _send(
    client: aiosmtplib.SMTP, message: EmailMessage, recipients: list[str]
) -> dict[str, str]:
    """Send; the recipients the server refused, with its reply (some may be refused)."""
    errors, _ = await _smtp("send", client.send_message(message, recipients=recipients))
    return {address: f"{reply.code} {reply.message}"[:200] for address, reply in errors.items()}


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


async def _smtp(step: str, pending: Awaitable[Any]) -> Any:
    """Await one SMTP step, its failures as node errors naming the step."""
    try:
        return await pending
    except aiosmtplib.SMTPAuthenticationError as error:
        raise NodeError(f"smtp {step}: the server refused the login ({error.code})") from None
    except aiosmtplib.SMTPRecipientsRefused as error:
        replies = "; ".join(f"{r.recipient}: {r.code}" for r in error.recipients)[:300]
        raise NodeError(f"smtp {step}: every recipient was refused ({replies})") from None
    except aiosmtplib.SMTPSenderRefused as error:
        raise NodeError(f"smtp {step}: the server refused the sender ({error.code})") from None
    except aiosmtplib.SMTPResponseException as error:
        temporary = 400 <= error.code < 500  # RFC 5321: 4yz is a transient failure
        raise NodeError(f"smtp {step}: the server answered {error.code} {error.message[:200]}",
                        retryable=temporary) from None  # fmt: skip
    except aiosmtplib.SMTPTimeoutError:
        raise NodeError(f"smtp {step}: timed out", retryable=True) from None
    except aiosmtplib.SMTPNotSupported as error:
        raise NodeError(f"smtp {step}: the server does not support this: {error}"[:300]) from None
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError) as error:
        raise NodeError(
            f"smtp {step}: the connection failed: {error}"[:300], retryable=True
        ) from None
    except ssl.SSLError as error:
        raise NodeError(
            f"smtp {step}: TLS failed ({error.reason or type(error).__name__})"
        ) from None
    except aiosmtplib.SMTPException as error:
        raise NodeError(f"smtp {step}: {type(error).__name__}: {error}"[:300]) from None


NODES: tuple[type[Node], ...] = (Smtp,)
CREDENTIALS: tuple[CredentialType, ...] = (SMTP_CREDENTIAL,)

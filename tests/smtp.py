"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives: the `smtp_server` fixture.

Loaded from tests/conftest.py with `pytest_plugins = ["tests.smtp"]`. The server runs in its own
thread (aiosmtpd's Controller), so the code under test talks to it over a real socket.
"""

import asyncio
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Envelope:
    """What the SMTP client said outside the message: MAIL FROM and RCPT TO."""

    mail_from: str
    rcpt_tos: list[str]


class _Handler:
    def __init__(self, server: "SMTPServer") -> None:
        self.server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content
        # Stored as a local mailbox would: with the wire's CRLF line ends turned into LF.
        content = content.replace(b"\r\n", b"\n")
        message = BytesParser(_class=EmailMessage, policy=default_policy).parsebytes(content)
        if self.server.refuse_next > 0:
            self.server.refuse_next -= 1
            self.server.refused.append(message)
            return self.server.refusal
        # Appended from the server's thread; list.append is atomic, and the envelope goes first
        # so a reader that sees the message also sees its envelope.
        self.server.envelopes.append(Envelope(envelope.mail_from, list(envelope.rcpt_tos)))
        self.server.messages.append(message)
        return "250 Message accepted"


def find_free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class SMTPServer:
    """An SMTP server on `host:port` that can be stopped and started again on the same port."""

    def __init__(self, host: str = HOST, port: int | None = None) -> None:
        self.host = host
        self.port = port if port is not None else find_free_port(host)
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []
        # The next this many messages are answered with `refusal` and kept in `refused`.
        self.refuse_next = 0
        self.refusal = "451 4.3.0 Try again later"
        self.refused: list[EmailMessage] = []
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            return
        controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, enable_SMTPUTF8=True
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def wait_for(self, count: int, timeout: float = 5) -> list[EmailMessage]:
        """Wait until at least `count` messages have arrived; fail the test after `timeout`."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} messages within {timeout} s, got {len(self.messages)}"
                )
            await asyncio.sleep(0.01)
        return list(self.messages)


@pytest.fixture
def free_port() -> int:
    """A TCP port on loopback with nothing listening on it (at the time of asking)."""
    return find_free_port()


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A running SMTP server on loopback; `.messages` holds the parsed messages it received."""
    server = SMTPServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()

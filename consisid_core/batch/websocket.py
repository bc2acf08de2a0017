"""A minimal RFC 6455 websocket client (standard library only) for ComfyUI's `/ws` progress messages."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import struct
from urllib.parse import urlsplit

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocketError(ConnectionError):
    """The websocket handshake failed or the connection broke."""


class WebSocket:
    """A blocking websocket connection: `recv()` returns whole text (str) or binary (bytes) messages."""

    def __init__(self, url: str, timeout: float = 10.0, headers: dict[str, str] | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise WebSocketError(f"not a websocket URL: {url}")
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            raw = socket.create_connection((parts.hostname, port), timeout=timeout)
        except OSError as exc:
            raise WebSocketError(f"cannot connect to {url}: {exc}") from exc
        if parts.scheme == "wss":
            raw = ssl.create_default_context().wrap_socket(raw, server_hostname=parts.hostname)
        self._sock = raw
        self._buffer = b""
        self._partial: tuple[list[bytes], int | None] = ([], None)
        self.closed = False
        self._handshake(parts.hostname, port, path, headers or {})

    # -------------------------------------------------------------- handshake and raw io

    def _handshake(self, host: str, port: int, path: str, extra: dict[str, str]) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n"
        )
        self._sock.sendall(request.encode())
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            self.close()
            raise WebSocketError(f"websocket upgrade refused: {lines[0]}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        expected = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            self.close()
            raise WebSocketError("websocket upgrade answered with a wrong Sec-WebSocket-Accept")

    def _fill(self) -> None:
        try:
            chunk = self._sock.recv(65536)
        except socket.timeout:
            raise
        except OSError as exc:
            self.closed = True
            raise WebSocketError(f"websocket connection lost: {exc}") from exc
        if not chunk:
            self.closed = True
            raise WebSocketError("websocket closed by the server")
        self._buffer += chunk

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        length = len(payload)
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", length)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._sock.sendall(header + mask + masked)

    def _frame_in_buffer(self) -> tuple[bool, int, bytes] | None:
        """Take one whole frame off the buffer, or None (buffer untouched) while part of it has not arrived."""
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        length, offset = second & 0x7F, 2
        if length in (126, 127):
            size = 2 if length == 126 else 8
            if len(buffer) < offset + size:
                return None
            (length,) = struct.unpack(">H" if size == 2 else ">Q", buffer[offset : offset + size])
            offset += size
        mask = None
        if second & 0x80:
            if len(buffer) < offset + 4:
                return None
            mask, offset = buffer[offset : offset + 4], offset + 4
        if len(buffer) < offset + length:
            return None
        payload, self._buffer = buffer[offset : offset + length], buffer[offset + length :]
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(first & 0x80), first & 0x0F, payload

    def _read_frame(self) -> tuple[bool, int, bytes]:
        """The next frame; a timeout while it arrives leaves the partial frame buffered for the next call."""
        while True:
            frame = self._frame_in_buffer()
            if frame is not None:
                return frame
            self._fill()

    # -------------------------------------------------------------- public api

    def settimeout(self, seconds: float | None) -> None:
        """Timeout for `recv` (socket.timeout is raised when it passes without a message)."""
        self._sock.settimeout(seconds)

    def send_text(self, text: str) -> None:
        """Send one text message."""
        self._send_frame(OP_TEXT, text.encode())

    def recv(self) -> str | bytes:
        """The next whole message; answers pings; raises WebSocketError when the connection closes."""
        parts, message_opcode = self._partial  # fragments kept across a timeout
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_PING:
                self._send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                self.closed = True
                try:
                    self._send_frame(OP_CLOSE, payload[:2])
                except OSError:
                    pass
                raise WebSocketError("websocket closed by the server")
            if opcode != OP_CONT:
                parts, message_opcode = [], opcode
                self._partial = (parts, message_opcode)
            parts.append(payload)
            if fin:
                self._partial = ([], None)
                data = b"".join(parts)
                return data.decode() if message_opcode == OP_TEXT else data

    def recv_json(self) -> dict | None:
        """The next text message parsed as JSON; binary messages (previews) give None."""
        message = self.recv()
        if isinstance(message, bytes):
            return None
        return json.loads(message)

    def close(self) -> None:
        """Close politely (best effort)."""
        if not self.closed:
            try:
                self._send_frame(OP_CLOSE, struct.pack(">H", 1000))
            except OSError:
                pass
        self.closed = True
        try:
            self._sock.close()
        except OSError:
            pass

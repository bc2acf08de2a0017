"""Credentials in a server URL (http://user:password@host): sent as an Authorization header, never printed."""

from __future__ import annotations

import base64
import re
import urllib.parse

_USERINFO = re.compile(r"(?<=//)[^/?#@\s]*@")


def redact(url: str) -> str:
    """The URL as it may be shown or logged: any `user:password@` replaced by `***@`."""
    return _USERINFO.sub("***@", url or "")


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """(URL without user/password, {"Authorization": "Basic ..."} or {}) for a server base URL."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
    clean = urllib.parse.urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, {"Authorization": "Basic " + base64.b64encode(token).decode()}

"""Small JSON-over-HTTP(S) calls with the stdlib: etcd's v2 keys API and v3 JSON gateway.

The agent makes a handful of calls before start; urllib is enough, and keeps the
node image free of an HTTP client dependency.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TLSClient:
    """Client-side TLS material for talking to etcd's client port."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file or None)
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


class HTTPError(RuntimeError):
    """A failed call, with the status when the server answered."""

    def __init__(self, message: str, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


def call(
    url: str,
    payload: dict[str, Any] | None = None,
    *,
    tls: TLSClient | None = None,
    proxy: str = "",
    timeout: float = 5.0,
    method: str | None = None,
) -> Any:
    """GET (or POST `payload` as JSON) and decode the JSON answer."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {})
    ]
    if url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=(tls or TLSClient()).context()))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = body.decode(errors="replace")
        raise HTTPError(f"{url}: HTTP {exc.code}", exc.code, decoded) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HTTPError(f"{url}: {reason}") from exc

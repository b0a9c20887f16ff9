"""URL and `--initial-cluster` parsing, with errors that name the offending flag."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from .flags import split_list


class UrlError(ValueError):
    """A URL flag etcd would reject, explained."""


@dataclass(frozen=True, order=True)
class Url:
    scheme: str
    host: str
    port: int

    @property
    def is_ip(self) -> bool:
        return is_ip(self.host)

    @property
    def is_tls(self) -> bool:
        return self.scheme in ("https", "unixs")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_url(raw: str, flag: str) -> Url:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https", "unix", "unixs"):
        raise UrlError(f"--{flag}: {raw!r} must start with http:// or https:// (e.g. http://10.0.1.10:2380)")
    if not parts.hostname:
        raise UrlError(f"--{flag}: {raw!r} has no host")
    if parts.path not in ("", "/"):
        raise UrlError(f"--{flag}: {raw!r} must not have a path; etcd URLs are scheme://host:port")
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError as exc:
        raise UrlError(f"--{flag}: {raw!r} has an invalid port") from exc
    return Url(parts.scheme, parts.hostname, port)


def parse_urls(raw: str | None, flag: str) -> list[Url]:
    return [parse_url(item, flag) for item in split_list(raw)]


def parse_initial_cluster(raw: str | None, flag: str = "initial-cluster") -> list[tuple[str, Url]]:
    """`name=url,name=url2,...` in order; a name may repeat to list several URLs."""
    entries: list[tuple[str, Url]] = []
    for item in split_list(raw):
        name, eq, url = item.partition("=")
        if not eq or not name.strip() or not url.strip():
            raise UrlError(
                f"--{flag}: {item!r} is not name=url; write it like infra0=http://10.0.1.10:2380"
            )
        entries.append((name.strip(), parse_url(url, flag)))
    return entries


def cluster_map(entries: list[tuple[str, Url]]) -> dict[str, list[Url]]:
    grouped: dict[str, list[Url]] = {}
    for name, url in entries:
        grouped.setdefault(name, []).append(url)
    return grouped


def format_initial_cluster(members: list[tuple[str, Url | str]]) -> str:
    return ",".join(f"{name}={url}" for name, url in members)

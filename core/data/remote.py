"""Web addresses a visitor gives (TF Hub models), fetched safely on a shared server.

On a shared server a typed address must not make the server reach its own internal services (a
server-side request forgery: loopback, the private network, a cloud's metadata endpoint). So in
hosted mode an address is fetched only when

- it is `https://` on the default port, on a host of the allow-list (TL_HUB_HOSTS; by default
  tfhub.dev, kaggle.com, www.kaggle.com and storage.googleapis.com), without a user name or password;
- every address its host resolves to is public (not loopback, private, link-local, shared,
  reserved or multicast), and the connection goes to the address that was checked;
- each redirect passes the same checks before it is followed (redirects are followed here, one
  by one, never by the HTTP library);
- the download stays under a size cap (TL_HUB_MAX_MB) and a time limit (TL_HUB_TIMEOUT_S).

Anything else is refused with a sentence (`AddressRefused`) before a request is made. A private
computer (not hosted) keeps fetching as before; this module is not used there.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urljoin, urlsplit

from core import settings
from core.errors import AddressRefused

REDIRECTS = (301, 302, 303, 307, 308)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(ip: IPAddress) -> bool:
    """True for an address on the public internet; False for loopback, private, link-local (cloud metadata
    at 169.254.169.254 included), carrier-grade NAT, reserved, multicast and unspecified ones."""
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address written as IPv6 is judged as that IPv4 address: mapped (::ffff:127.0.0.1),
        # 6to4 (2002:7f00:1::), Teredo's client, NAT64 (64:ff9b::7f00:1) and the old compatible form (::127.0.0.1).
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        if ip in _NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        inner = [a for a in embedded if a is not None]
        if inner:
            return all(is_public(a) for a in inner)
    return ip.is_global and not ip.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


@dataclass(frozen=True)
class Policy:
    """What may be fetched: schemes, hosts (None: any), ports (None: any), which resolved addresses are
    acceptable, and the caps. The resolver and the address rule are fields so tests can point a host at a
    local server."""

    hosts: tuple[str, ...] | None
    schemes: tuple[str, ...] = ("https",)
    ports: tuple[int, ...] | None = (443,)
    allow_address: Callable[[IPAddress], bool] = is_public
    resolve: Callable[[str, int], list[str]] = _resolve
    max_bytes: int = 500 * 2**20
    max_unpacked_bytes: int = 2000 * 2**20
    timeout: float = 600.0
    max_redirects: int = 5


def visitor_policy() -> Policy:
    """The rule for addresses visitors give on a shared server, from TL_HUB_HOSTS, TL_HUB_MAX_MB and TL_HUB_TIMEOUT_S."""
    cap = settings.hub_max_bytes()
    return Policy(hosts=settings.hub_hosts(), max_bytes=cap, max_unpacked_bytes=4 * cap,
                  timeout=settings.hub_timeout_seconds())


@dataclass(frozen=True)
class Target:
    """A checked address: where to connect (the checked IP) and what to ask for."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    ip: str


def _shown(url: str) -> str:
    return url if len(url) <= 80 else url[:77] + "…"


def check_url(url: str, policy: Policy, via: str | None = None, resolve: bool = True) -> Target:
    """The address checked against the policy (scheme, host, port, resolved addresses); AddressRefused otherwise.

    `via`: the address that redirected here, for the sentence. `resolve=False`: no DNS look-up (the static
    rules, and an address given as digits); the Target then has no ip.
    """
    what = f"'{_shown(via)}' redirected to '{_shown(url)}', which" if via else f"'{_shown(url)}'"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise AddressRefused(f"{what} is not a web address this server can read; check it.") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".").lower()
    if scheme not in policy.schemes:
        raise AddressRefused(f"This shared server downloads models only from {' or '.join(s + '://' for s in policy.schemes)} "
                             f"addresses, so {what} was not fetched; use the model's https:// address.")
    if not host or parts.username is not None or parts.password is not None:
        raise AddressRefused(f"{what} names no host (or carries a user name or password), so it was not fetched.")
    if policy.hosts is not None and host not in policy.hosts:
        raise AddressRefused(f"This shared server downloads models only from {', '.join(policy.hosts)}, so {what} was "
                             "not fetched; use a model published there, or ask whoever runs this server to add that "
                             "host to TL_HUB_HOSTS.")
    port = port or (443 if scheme == "https" else 80)
    if policy.ports is not None and port not in policy.ports:
        raise AddressRefused(f"{what} asks for port {port}; this shared server downloads models only from the standard "
                             "port, so it was not fetched.")
    if not resolve:
        try:
            found = [str(ipaddress.ip_address(host))]
        except ValueError:
            return Target(url, scheme, host, port, "", "")
    else:
        try:
            found = policy.resolve(host, port)
        except (OSError, UnicodeError):
            raise AddressRefused(f"The host '{host}' could not be found; check the address.") from None
    if not found or not all(policy.allow_address(ipaddress.ip_address(ip.split("%")[0])) for ip in found):
        raise AddressRefused(f"{what} leads to a private, local or cloud-internal address, which this shared server "
                             "never contacts; use a model on a public model host.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, scheme, host, port, path, found[0])


def with_query(url: str, query: str) -> str:
    """The address with one more query parameter (TF Hub's `tf-hub-format=compressed`)."""
    return url + ("&" if urlsplit(url).query else "?") + query


class Body:
    """A response body read under the caps: bytes received, bytes unpacked from it, and the time limit."""

    def __init__(self, response: Any, host: str, policy: Policy, deadline: float) -> None:
        self._response, self._host, self._policy, self._deadline = response, host, policy, deadline
        self.received = 0
        self.unpacked_bytes = 0

    def read(self, n: int = -1) -> bytes:
        import urllib3

        self._check_time()
        try:
            data = self._response.read(n if n is not None and n >= 0 else 2**20, decode_content=False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._check_time()
            raise OSError(f"the download from {self._host} broke off: {type(exc).__name__}") from None
        self.received += len(data)
        if self.received > self._policy.max_bytes:
            raise self._too_big()
        return data

    def unpacked(self, n: int) -> None:
        """Count `n` bytes written while unpacking (an archive may expand far beyond its download)."""
        self.unpacked_bytes += n
        if self.unpacked_bytes > self._policy.max_unpacked_bytes:
            raise self._too_big()
        self._check_time()

    def _check_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise AddressRefused(f"The download from {self._host} took longer than {self._policy.timeout:g} seconds, "
                                 "the most this shared server allows; try again later or choose a smaller model.")

    def _too_big(self) -> AddressRefused:
        return AddressRefused(f"The download from {self._host} is larger than {self._policy.max_bytes / 2**20:,.0f} MB, "
                              "the most this shared server takes, so it was stopped; choose a smaller model.")


@contextmanager
def open_url(url: str, policy: Policy) -> Iterator[Body]:
    """GET the address under the policy, following redirects one by one after checking each; yields the body.

    AddressRefused for what the policy refuses (before that request is made); OSError for a failed download.
    """
    import urllib3

    deadline = time.monotonic() + policy.timeout
    step_timeout = urllib3.Timeout(connect=min(30.0, policy.timeout), read=min(60.0, policy.timeout))
    target, via = check_url(url, policy), None
    for _ in range(policy.max_redirects + 1):
        pool_kind = urllib3.HTTPSConnectionPool if target.scheme == "https" else urllib3.HTTPConnectionPool
        extra = {"server_hostname": target.host, "assert_hostname": target.host} if target.scheme == "https" else {}
        default_port = 443 if target.scheme == "https" else 80
        host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
        # Connect to the checked address itself, so a second DNS answer cannot send the request elsewhere.
        with pool_kind(target.ip, target.port, timeout=step_timeout, retries=False, maxsize=1, **extra) as pool:
            try:
                response = pool.urlopen("GET", target.path, redirect=False, preload_content=False,
                                        headers={"Host": host_header, "User-Agent": "TransferLab"})
            except urllib3.exceptions.HTTPError as exc:
                raise OSError(f"could not reach {target.host}: {type(exc).__name__}") from None
            try:
                if response.status in REDIRECTS and response.headers.get("Location"):
                    via, url = target.url, urljoin(target.url, response.headers["Location"])
                    target = check_url(url, policy, via=via)
                    continue
                if response.status != 200:
                    raise OSError(f"{target.host} answered HTTP {response.status}")
                length = response.headers.get("Content-Length")
                body = Body(response, target.host, policy, deadline)
                if length and length.isdigit() and int(length) > policy.max_bytes:
                    raise body._too_big()
                yield body
                return
            finally:
                response.release_conn()
    raise AddressRefused(f"'{_shown(url)}' redirected more than {policy.max_redirects} times, so it was not followed further.")

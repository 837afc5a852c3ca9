"""Outbound HTTP to URLs that staff can set (notification channels): the one way out.

Staff with the "Chatbot admin" role are not trusted with the network chatmon sits in, so a
URL they type must not reach loopback, the private network or the cloud metadata service
(server-side request forgery). Every request made here:

1. parses the URL (http/https only) and resolves its host with the system resolver;
2. refuses it unless *every* resolved address is public — not loopback, private, link-local
   (169.254.0.0/16 holds the metadata service), shared (100.64/10), multicast, reserved,
   unspecified, or an IPv4 address embedded in IPv6 (mapped, 6to4, Teredo, NAT64) that is one
   of those — or lies in OUTBOUND_ALLOWED_NETWORKS (on-premises receivers);
3. connects to the exact address that was checked (the URL's host is replaced by the IP, the
   Host header and the TLS SNI/certificate check keep the original name), so a second DNS answer
   cannot rebind the name to an internal address between check and connect;
4. ignores proxy environment variables (the proxy would resolve the name again), follows no
   redirects, and never reads the response body: callers get the status code only, and every
   network failure (refused, reset, timeout, TLS) is one generic error, so the answer does not
   tell an open port from a closed one.

Clients that need more than one request (the `openai` client of an experiment's model target,
whose base URL staff type) get the same checks and pinning per request from `PinnedTransport`.

Operator-set URLs (OPENAI_BASE_URL for the judge and embeddings, EMAIL_HOST) come from the
environment, not from staff, and do not go through here (see SECURITY.md).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import cache

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundRefused(ValueError):
    """The URL may not be requested (bad scheme, unresolvable, or a non-public address).

    A ValueError so config validators that catch ValueError show it as a form error.
    """


class OutboundUnreachable(Exception):
    """The request did not get an HTTP answer (any network failure: one generic message)."""


@dataclass(frozen=True)
class Destination:
    url: httpx.URL
    host: str  # the name as written in the URL (IDNA-encoded)
    port: int
    addresses: tuple[str, ...]  # checked addresses, in the resolver's order


def parse_networks(values: list[str] | tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """OUTBOUND_ALLOWED_NETWORKS entries as networks; raises ImproperlyConfigured on a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"OUTBOUND_ALLOWED_NETWORKS: {value!r} is not a CIDR network") from exc
    return tuple(networks)


@cache
def _allowed_networks(values: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return parse_networks(values)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not _is_public(embedded):
            return False
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
        or address.is_loopback or address.is_link_local or address.is_private
    )


def address_allowed(address: IPAddress) -> bool:
    """Public, or inside one of OUTBOUND_ALLOWED_NETWORKS (checked as written and unwrapped)."""
    allowed = _allowed_networks(tuple(settings.OUTBOUND_ALLOWED_NETWORKS))
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)):
        candidates.append(embedded)
    if any(candidate in network for candidate in candidates for network in allowed
           if candidate.version == network.version):
        return True
    return _is_public(address)


def _resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (the seam tests replace)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0] for info in infos))


def destination_check(url: str) -> Destination:
    """Resolve url's host and check every address; raises OutboundRefused with a reason to show."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise OutboundRefused("is not a valid URL") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise OutboundRefused("must be an http(s) URL")
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = _resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise OutboundRefused(f"host {host!r} could not be resolved") from exc
    if not addresses:
        raise OutboundRefused(f"host {host!r} could not be resolved")
    for raw in addresses:
        address = ipaddress.ip_address(raw.split("%", 1)[0])  # drop an IPv6 zone id
        if not address_allowed(address):
            # The address itself is not echoed: the reason is enough to fix the URL.
            raise OutboundRefused(
                f"host {host!r} is not a public address (loopback, private, link-local, "
                "multicast and reserved ranges are refused; an operator can allow on-premises "
                "networks with OUTBOUND_ALLOWED_NETWORKS)"
            )
    return Destination(url=parsed, host=host, port=port, addresses=tuple(addresses))


def _host_header(destination: Destination) -> str:
    default = 443 if destination.url.scheme == "https" else 80
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    return host if destination.port == default else f"{host}:{destination.port}"


def post(url: str, *, content: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST content to url through the checks above; returns the HTTP status code.

    Raises OutboundRefused (do not retry: fix the URL) or OutboundUnreachable (a generic
    network failure, possibly transient). The response body is never read.
    """
    destination = destination_check(url)
    request_headers = {**headers, "Host": _host_header(destination)}
    # SNI and certificate verification use the original name, not the pinned IP.
    extensions = {"sni_hostname": destination.host} if destination.url.scheme == "https" else {}
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for address in destination.addresses:
            pinned = destination.url.copy_with(host=address.split("%", 1)[0])
            try:
                with client.stream(
                    "POST", pinned, content=content, headers=request_headers, extensions=extensions
                ) as response:
                    return response.status_code
            except httpx.ConnectError:
                continue  # try the next checked address (dual-stack hosts)
            except httpx.HTTPError as exc:
                raise OutboundUnreachable() from exc
    raise OutboundUnreachable()


def exchange(
    url: str, *, method: str, content: bytes, headers: dict[str, str], timeout: float, max_body_bytes: int
) -> tuple[int, bytes]:
    """Like `post`, for callers that need the answer (experiment targets: a bot's own endpoint).

    Same checks and pinning; returns the status and at most `max_body_bytes` of the body (a
    longer body raises OutboundUnreachable: the caller cannot use a truncated JSON answer).
    """
    destination = destination_check(url)
    request_headers = {**headers, "Host": _host_header(destination)}
    extensions = {"sni_hostname": destination.host} if destination.url.scheme == "https" else {}
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for address in destination.addresses:
            pinned = destination.url.copy_with(host=address.split("%", 1)[0])
            try:
                with client.stream(
                    method, pinned, content=content, headers=request_headers, extensions=extensions
                ) as response:
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > max_body_bytes:
                            raise OutboundUnreachable(f"the answer is longer than {max_body_bytes} bytes")
                    return response.status_code, bytes(body)
            except httpx.ConnectError:
                continue
            except httpx.HTTPError as exc:
                raise OutboundUnreachable() from exc
    raise OutboundUnreachable()


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport for clients that must speak to a staff-set URL (the `openai` client of
    an experiment's model target): every request goes through `destination_check` and connects
    to the checked address itself (steps 1–3 above), keeping the Host header and TLS SNI of the
    name, so the name cannot be rebound between the check and the connection.

    A refused destination raises OutboundRefused (wrapped by the caller's client, e.g. openai's
    APIConnectionError, with it as `__cause__`).
    """

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        destination = destination_check(str(request.url))
        request.headers["Host"] = _host_header(destination)
        if destination.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": destination.host}
        error: httpx.ConnectError | None = None
        for address in destination.addresses:
            request.url = request.url.copy_with(host=address.split("%", 1)[0])
            try:
                return self._inner.handle_request(request)
            except httpx.ConnectError as exc:
                error = exc  # try the next checked address (dual-stack hosts)
        raise error or httpx.ConnectError("no address to connect to", request=request)

    def close(self) -> None:
        self._inner.close()


def pinned_http_client(*, timeout: float) -> httpx.Client:
    """An httpx client for a staff-set URL: checked and pinned per request (PinnedTransport), no
    redirects followed (a 3xx is the answer), proxy environment variables ignored."""
    return httpx.Client(
        transport=PinnedTransport(), timeout=timeout, follow_redirects=False, trust_env=False
    )

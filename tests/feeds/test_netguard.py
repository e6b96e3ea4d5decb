"""Feeds reach only public addresses: the rule, and real fetches on loopback that it refuses.

The machine reaches no public address, so "public" is played by 127.0.0.2 put
in the allow list (``FEED_ALLOW_NETWORKS``), while the internal server to
protect is the feed server on 127.0.0.1, outside it. DNS is played by
patching ``mailer.netguard.resolve``, the one resolver the guard uses.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from ipaddress import ip_address

import httpx
import pytest

from mailer import netguard
from mailer.config import ConfigError, Launch, load_config
from mailer.feeds.fetch import unreachable
from tests.feeds.conftest import corpus
from tests.http_server import FeedServer

FEED = corpus("rss2_content.xml")
FRONT = "127.0.0.2"  # the stand-in for a public server: allowed by the tests that use it
REFUSED = "refused: {} is not a public address (MAILER_FEED_ALLOW_NETWORKS)"


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.255.254", "10.0.0.5", "172.16.3.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "0.1.2.3", "192.0.0.8", "192.0.2.1", "198.18.0.1", "224.0.0.1", "239.255.255.250", "240.0.0.1",
    "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
    "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
    "64:ff9b:1::7f00:1",
])
def test_addresses_that_are_not_public(address):
    assert not netguard.is_public(ip_address(address))
    assert not netguard.permits(ip_address(address), ())


@pytest.mark.parametrize("address", [
    "93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4002:410::200e",
    "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808",
])
def test_public_addresses(address):
    assert netguard.is_public(ip_address(address))


def test_the_allow_list_opens_only_its_networks():
    allowed = netguard.parse_networks("10.1.0.0/16, fd00::/8  127.0.0.1")
    assert netguard.permits(ip_address("10.1.2.3"), allowed)
    assert netguard.permits(ip_address("fd00::5"), allowed)
    assert netguard.permits(ip_address("::ffff:127.0.0.1"), allowed)  # the same host, written in IPv6
    assert not netguard.permits(ip_address("10.2.0.1"), allowed)
    assert not netguard.permits(ip_address("127.0.0.2"), allowed)
    assert not netguard.permits(ip_address("169.254.169.254"), allowed)


@pytest.mark.parametrize(("value", "reason"), [
    ("10.0.0.0/33", "'10.0.0.0/33' is not a network"),
    ("intranet.example", "'intranet.example' is not a network"),
    ("10.0.0.5/8", "'10.0.0.5/8' has bits set beyond its mask: did you mean 10.0.0.0/8?"),
])
def test_a_bad_network_stops_the_start_naming_the_variable(value, reason):
    with pytest.raises(ConfigError) as error:
        load_config({"MAILER_FEED_ALLOW_NETWORKS": f"192.168.0.0/16 {value}"}, launch=Launch.COMMAND)
    assert str(error.value).startswith(f"MAILER_FEED_ALLOW_NETWORKS: {reason}")
    assert "\n" not in str(error.value)


def test_defaults_none_in_production_loopback_in_development():
    production = load_config({"MAILER_ENV": "production", "MAILER_SECRET_KEY": "a-long-enough-s3cret",
                              "MAILER_SMTP_URL": "smtp://mx.example.it:25"})
    assert production["FEED_ALLOW_NETWORKS"] == ()
    development = load_config({}, launch=Launch.COMMAND)
    assert [str(n) for n in development["FEED_ALLOW_NETWORKS"]] == ["127.0.0.0/8", "::1/128"]
    configured = load_config({"MAILER_FEED_ALLOW_NETWORKS": "10.20.0.0/16,fd00::/8"}, launch=Launch.COMMAND)
    assert [str(n) for n in configured["FEED_ALLOW_NETWORKS"]] == ["10.20.0.0/16", "fd00::/8"]


@pytest.fixture
def front() -> Iterator[FeedServer]:
    """A second real HTTP server, on 127.0.0.2: the "public" one."""
    server = FeedServer(host=FRONT).start()
    yield server
    server.stop()


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    """Patch the guard's resolver: ``resolver(name, [answers of the 1st call], [of the 2nd]...)``.

    The last answer repeats; the returned list records each name asked.
    """
    asked: list[str] = []

    def program(name: str, *answers: list[str]) -> list[str]:
        async def resolve(host: str, port: int) -> list[netguard.IPAddress]:
            assert host == name, host
            asked.append(host)
            return [ip_address(a) for a in answers[min(len(asked), len(answers)) - 1]]

        monkeypatch.setattr(netguard, "resolve", resolve)
        return asked

    return program


@pytest.mark.parametrize(("host", "address"), [
    ("127.0.0.1", "127.0.0.1"),
    ("[::1]", "::1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
    ("10.0.0.5", "10.0.0.5"),
    ("169.254.169.254", "169.254.169.254"),
    ("[fe80::1]", "fe80::1"),
    ("0.0.0.0", "0.0.0.0"),
    # Spellings that are not literals to ipaddress, but are to the C resolver.
    ("127.1", "127.1 (127.0.0.1)"),
    ("2130706433", "2130706433 (127.0.0.1)"),
    ("0x7f.0.0.1", "0x7f.0.0.1 (127.0.0.1)"),
])
def test_a_literal_internal_address_is_refused(feed_server, add_feed_row, poll, articles, host, address):
    port = feed_server.httpd.server_address[1]
    feed_server.add("/feed.xml", FEED)
    url = f"http://{host}:{port}/feed.xml"
    add_feed_row(url)
    [result] = poll(FEED_ALLOW_NETWORKS=[])
    assert not result.ok
    assert result.line() == f"FAILED {url}: {REFUSED.format(address)}"
    assert feed_server.requests == [] and articles() == []


def test_a_name_that_resolves_to_loopback_is_refused(feed_server, add_feed_row, poll, articles):
    url = feed_server.add("/feed.xml", FEED).replace("127.0.0.1", "localhost")
    add_feed_row(url)
    [result] = poll(FEED_ALLOW_NETWORKS=[])  # the real resolver: localhost is 127.0.0.1 (and maybe ::1)
    assert not result.ok
    assert result.error in (REFUSED.format("localhost (127.0.0.1)"), REFUSED.format("localhost (::1)"))
    assert feed_server.requests == [] and articles() == []


def test_one_internal_answer_among_public_ones_refuses_the_name(feed_server, add_feed_row, poll, resolver):
    port = feed_server.httpd.server_address[1]
    resolver("mixed.example", ["127.0.0.2", "127.0.0.1"])
    add_feed_row(f"http://mixed.example:{port}/feed.xml")
    [result] = poll(FEED_ALLOW_NETWORKS=[f"{FRONT}/32"])
    assert result.error == REFUSED.format("mixed.example (127.0.0.1)")
    assert feed_server.requests == []


@pytest.mark.parametrize("status", [301, 302, 308])
def test_a_redirect_to_an_internal_address_is_refused_and_never_kept(
        feed_server, front, add_feed_row, poll, feed_row, articles, status):
    internal = feed_server.add("/internal.xml", FEED)  # what the attacker wants in the archive
    public = front.add("/feed.xml", status=status, headers={"Location": internal})
    feed_id = add_feed_row(public, source="admin")
    [result] = poll(FEED_ALLOW_NETWORKS=[f"{FRONT}/32"])
    assert not result.ok
    assert result.error == f"{REFUSED.format('127.0.0.1')}, redirected to {internal}"
    assert [path for path, _headers in front.requests] == ["/feed.xml"]
    assert feed_server.requests == [] and articles() == []
    assert feed_row(feed_id).url == public  # a 301 to it never becomes the feed's URL


def test_dns_rebinding_between_hops_is_refused_at_connect(feed_server, add_feed_row, poll, articles, resolver):
    port = feed_server.httpd.server_address[1]
    feed_server.add("/feed.xml", FEED)  # the internal server, at 127.0.0.1:port
    public = FeedServer(host=FRONT, port=port).start()  # the same port on the "public" address
    try:
        public.add("/start", status=302, headers={"Location": "/feed.xml"})
        asked = resolver("rebind.example", [FRONT], ["127.0.0.1"])
        add_feed_row(f"http://rebind.example:{port}/start")
        [result] = poll(FEED_ALLOW_NETWORKS=[f"{FRONT}/32"])
    finally:
        public.stop()
    assert result.error == f"{REFUSED.format('rebind.example (127.0.0.1)')}, redirected to" \
                           f" http://rebind.example:{port}/feed.xml"
    assert asked == ["rebind.example", "rebind.example"]  # once per connection, each answer checked
    assert [path for path, _headers in public.requests] == ["/start"]
    assert feed_server.requests == [] and articles() == []


def test_the_connection_goes_to_the_address_that_was_checked(feed_server, add_feed_row, poll, resolver):
    port = feed_server.httpd.server_address[1]
    feed_server.add("/feed.xml", b"internal")
    public = FeedServer(host=FRONT, port=port).start()
    try:
        public.add("/feed.xml", FEED)
        # The check gets the public answer; any second lookup (by the HTTP
        # client, say) would get the internal one: only one must happen.
        asked = resolver("rebind.example", [FRONT], ["127.0.0.1"])
        add_feed_row(f"http://rebind.example:{port}/feed.xml")
        [result] = poll(FEED_ALLOW_NETWORKS=[f"{FRONT}/32"])
    finally:
        public.stop()
    assert result.ok and result.new == 3, result.line()
    assert asked == ["rebind.example"]
    assert feed_server.requests == []
    [(path, headers)] = public.requests
    assert path == "/feed.xml" and headers["Host"] == f"rebind.example:{port}"  # the name, not the address


def test_an_allowed_network_is_reached_by_address_and_by_name(feed_server, add_feed_row, poll, resolver):
    url = feed_server.add("/feed.xml", FEED)
    resolver("intranet.example", ["127.0.0.1"])
    add_feed_row(url)
    add_feed_row(url.replace("127.0.0.1", "intranet.example"))
    results = poll(FEED_ALLOW_NETWORKS=["127.0.0.1/32"])
    assert [r.ok for r in results] == [True, True], [r.line() for r in results]
    assert len(feed_server.requests) == 2


def test_proxies_from_the_environment_are_not_used(feed_server, front, add_feed_row, poll, monkeypatch):
    # A proxy would fetch for us from wherever it stands, unchecked.
    proxy = front.url("/")
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    add_feed_row(feed_server.add("/feed.xml", FEED))
    [result] = poll(FEED_ALLOW_NETWORKS=["127.0.0.0/8"])
    assert result.ok, result.line()
    assert front.requests == [] and len(feed_server.requests) == 1


@contextlib.contextmanager
def tcp_service(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback TCP service that is not HTTP; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        listener.close()


def _drain(conn: socket.socket) -> None:
    """Read until the client hangs up (or 10 s)."""
    conn.settimeout(10)
    while conn.recv(4096):
        pass


def _banner(conn: socket.socket) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.6p1\r\n")
    _drain(conn)


def _reset(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST


def _postgres_port() -> int | None:
    with socket.socket() as probe:
        probe.settimeout(1)
        return 5432 if probe.connect_ex(("127.0.0.1", 5432)) == 0 else None


def test_closed_open_and_silent_ports_read_the_same(add_feed_row, poll, caplog):
    caplog.set_level(logging.DEBUG, logger="mailer.feeds")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with tcp_service(_banner) as ssh, tcp_service(_reset) as reset, tcp_service(_drain) as silent:
        ports = {"closed": closed, "ssh": ssh, "reset": reset, "silent": silent, "postgres": _postgres_port()}
        urls = {kind: f"http://127.0.0.1:{port}/feed.xml" for kind, port in ports.items() if port}
        for url in urls.values():
            add_feed_row(url)
        add_feed_row("http://10.0.0.5:5432/feed.xml")
        results = poll(FEED_TIMEOUT=1.0)
    errors = {r.url: r.error for r in results}
    for kind, url in urls.items():
        assert errors[url] == unreachable(url), kind
        assert errors[url] == f"could not connect to 127.0.0.1:{ports[kind]}: no HTTP answer" \
                              " (refused, unreachable, timed out or not HTTP)"
    # The refusal names the address and nothing of its ports.
    assert errors["http://10.0.0.5:5432/feed.xml"] == REFUSED.format("10.0.0.5")
    # The server's own log keeps the cause, for the operator.
    assert any(f"127.0.0.1:{closed}" in r.getMessage() and "ConnectError" in r.getMessage() for r in caplog.records)


def test_the_sync_transport_obeys_the_same_rule(feed_server):
    url = feed_server.add("/hook", b"ok")
    refusing = httpx.Client(transport=netguard.guarded_sync_transport((), "MAILER_WEBHOOKS"))
    with refusing as client, pytest.raises(netguard.RefusedAddress) as refused:
        client.get(url)
    assert str(refused.value) == "refused: 127.0.0.1 is not a public address (MAILER_WEBHOOKS)"
    allowed = netguard.parse_networks("127.0.0.1/32")
    with httpx.Client(transport=netguard.guarded_sync_transport(allowed, "MAILER_WEBHOOKS")) as client:
        assert client.get(url).content == b"ok"
    assert len(feed_server.requests) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_to_a_pinned_address_still_names_and_verifies_the_host(add_feed_row, poll, resolver, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=intranet.example", "-addext", "subjectAltName=DNS:intranet.example"],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)

    def handshake(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            _drain(tls)

    with tcp_service(handshake) as port:
        resolver("intranet.example", ["127.0.0.1"])
        url = f"https://intranet.example:{port}/feed.xml"
        add_feed_row(url)
        [result] = poll(FEED_ALLOW_NETWORKS=["127.0.0.1/32"])
    assert names == ["intranet.example"]  # SNI: the name, though the socket went to the checked address
    assert result.error == unreachable(url)  # a self-signed certificate is not trusted

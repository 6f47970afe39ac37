"""Visitors' web addresses on a shared server: refused before any request unless https on an allowed host with
public addresses, every redirect checked again, downloads capped. A local HTTP server records what reached it."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.data import remote
from core.engine import networks
from core.errors import AddressRefused, ConfigError
from core.spec import backbones

SERVER_IP = "127.0.0.1"


def _model_tgz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        folder = tarfile.TarInfo("variables")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in (("saved_model.pb", b"graph"), ("variables/variables.index", b"index")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((SERVER_IP, 0), _Handler)
        self.connections = 0
        self.paths: list[str] = []

    def verify_request(self, request, client_address) -> bool:  # every connection, even one that sends nothing
        self.connections += 1
        return True


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        server: _Server = self.server  # type: ignore[assignment]
        server.paths.append(self.path)
        port = server.server_address[1]
        redirects = {
            "/to-private": f"http://internal.test:{port}/secret",
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-loopback": f"http://[::1]:{port}/secret",
            "/to-other-host": f"http://evil.example:{port}/secret",
            "/to-model": "/model",
            "/loop": "/loop",
        }
        route = self.path.split("?")[0]
        if route in redirects:
            self.send_response(302)
            self.send_header("Location", redirects[route])
            self.end_headers()
        elif route == "/model":
            data = _model_tgz()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif route == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 2**20))
            self.end_headers()
        elif route == "/endless":  # no length given: the cap must stop it while reading
            self.send_response(200)
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"\0" * 65536)
        elif route == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.3)
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def hosted(monkeypatch):
    monkeypatch.setenv("TL_HOSTED", "1")
    monkeypatch.delenv("TL_HUB_HOSTS", raising=False)


def _local_policy(server: _Server, **changes) -> remote.Policy:
    """Plain http to the test server under the name models.test, counted as public; every other rule as hosted."""
    names = {"models.test": [SERVER_IP], "internal.test": ["10.0.0.7"], "evil.example": ["93.184.216.34"]}
    base = remote.Policy(
        hosts=("models.test", "internal.test", "169.254.169.254", "::1"), schemes=("http",), ports=None,
        allow_address=lambda ip: str(ip) == SERVER_IP or remote.is_public(ip),
        resolve=lambda host, port: names.get(host, [host]), max_bytes=2**20, timeout=5.0,
    )
    return dataclasses.replace(base, **changes)


def _url(server: _Server, path: str, host: str = "models.test") -> str:
    return f"http://{host}:{server.server_address[1]}{path}"


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "10.1.2.3", "172.16.0.9",
                                "192.168.1.1", "169.254.169.254", "fe80::1", "fd00:ec2::254", "100.64.0.1", "0.0.0.0",
                                "224.0.0.1",
                                # IPv4 inside IPv6: 6to4, NAT64, the old compatible form, Teredo's client
                                "2002:7f00:1::", "2002:a9fe:a9fe::", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
                                "::127.0.0.1", "::10.0.0.1", "2001:0:4136:e378:8000:63bf:80ff:fffe"])
def test_loopback_private_link_local_and_metadata_addresses_are_not_public(ip):
    assert not remote.is_public(ipaddress.ip_address(ip))


def test_public_addresses_are_public():
    assert remote.is_public(ipaddress.ip_address("142.250.74.110"))
    assert remote.is_public(ipaddress.ip_address("2a00:1450:4001:82b::200e"))
    assert remote.is_public(ipaddress.ip_address("64:ff9b::8efa:4a6e"))  # NAT64 of a public address (142.250.74.110)


@pytest.mark.parametrize("path_of", [
    lambda port: f"http://127.0.0.1:{port}/ssrf-probe",         # the probe of the issue: plain http, loopback
    lambda port: f"https://127.0.0.1:{port}/ssrf-probe",        # https, but not an allowed host
    lambda port: "https://tfhub.dev:" + str(port) + "/google/x",  # an allowed host on another port
    lambda port: "https://user:pw@tfhub.dev/google/x",
    lambda port: "ftp://tfhub.dev/google/x",
])
def test_the_hosted_rule_refuses_before_any_request(path_of, server, hosted):
    url = path_of(server.server_address[1])
    with pytest.raises(AddressRefused):
        with remote.open_url(url, remote.visitor_policy()):
            pass
    assert server.connections == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_an_allowed_host_that_is_loopback_is_still_refused(host, server, hosted, monkeypatch):
    monkeypatch.setenv("TL_HUB_HOSTS", f"{host},tfhub.dev")
    policy = dataclasses.replace(remote.visitor_policy(), ports=None)
    with pytest.raises(AddressRefused, match="private, local or cloud-internal"):
        with remote.open_url(f"https://{host}:{server.server_address[1]}/x", policy):
            pass
    assert server.connections == 0


def test_private_and_metadata_addresses_are_refused_before_any_request(server):
    policy = _local_policy(server)
    for url in (_url(server, "/x", "internal.test"), "http://169.254.169.254/latest/meta-data/", "http://[::1]:1/x"):
        with pytest.raises(AddressRefused, match="private, local or cloud-internal"):
            remote.check_url(url, policy)
    assert server.connections == 0


@pytest.mark.parametrize("path, words", [
    ("/to-private", "private, local or cloud-internal"),
    ("/to-metadata", "private, local or cloud-internal"),
    ("/to-loopback", "private, local or cloud-internal"),
    ("/to-other-host", "only from"),
    ("/loop", "redirected more than"),
])
def test_every_redirect_is_checked_before_it_is_followed(path, words, server):
    with pytest.raises(AddressRefused, match=words):
        with remote.open_url(_url(server, path), _local_policy(server)):
            pass
    if path != "/loop":
        assert server.paths == [path]  # the redirect's target was never asked for


def test_a_checked_redirect_is_followed_and_the_body_read(server):
    with remote.open_url(_url(server, "/to-model"), _local_policy(server)) as body:
        data = body.read()
        while chunk := body.read():
            data += chunk
    assert data == _model_tgz() and server.paths == ["/to-model", "/model"]


@pytest.mark.parametrize("path", ["/big", "/endless"])
def test_downloads_are_capped_in_size(path, server):
    policy = _local_policy(server, max_bytes=2**20)
    with pytest.raises(AddressRefused, match="larger than 1 MB"):
        with remote.open_url(_url(server, path), policy) as body:
            while body.read(65536):
                pass


def test_downloads_are_capped_in_time(server):
    with pytest.raises(AddressRefused, match="took longer than 1 seconds"):
        with remote.open_url(_url(server, "/slow"), _local_policy(server, timeout=1.0)) as body:
            while body.read(1):
                pass


def test_the_model_page_rule_refuses_the_probe_at_once_and_allows_tf_hub(hosted):
    with pytest.raises(ConfigError, match="https:// address on tfhub.dev"):
        backbones.hub_id("http://127.0.0.1:9999/ssrf-probe")
    assert backbones.hub_id(backbones.HUB_MODELS[0].handle).startswith(backbones.HUB_PREFIX)


def test_fetch_hub_in_hosted_mode_refuses_the_probe_without_a_request(server, hosted, monkeypatch):
    monkeypatch.delenv("TL_OFFLINE")
    spec = backbones.get(f"hub:http://127.0.0.1:{server.server_address[1]}/ssrf-probe")
    with pytest.raises(AddressRefused):
        networks.fetch_hub(spec)
    assert server.connections == 0


def test_fetch_hub_in_hosted_mode_downloads_through_the_checks(server, hosted, monkeypatch, tmp_path):
    monkeypatch.delenv("TL_OFFLINE")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub"))
    monkeypatch.setattr(remote, "visitor_policy", lambda: _local_policy(server))
    handle = _url(server, "/to-model")
    found = networks.fetch_hub(backbones.get("hub:" + handle))
    assert (found / "saved_model.pb").read_bytes() == b"graph"
    assert found == backbones.hub_local(handle)
    assert server.paths == ["/to-model?tf-hub-format=compressed", "/model"]

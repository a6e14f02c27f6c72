"""Which MongoDB the test suite talks to, and a fresh database per test.

* ``FHIR_TEST_MONGO_URI`` set: that server (a real MongoDB; a replica set for transactions).
* otherwise: the ``mongoeco`` MongoDB wire-protocol emulator (PyPI; an emulator, **not** MongoDB),
  run by the Python 3.13 virtualenv ``.venv-mongo`` that ``make mongo-env`` prepares
  (``FHIR_TEST_MONGOECO_PYTHON`` names another interpreter). This file is also the emulator's
  launcher: ``python tests/mongo_server.py serve`` binds a free port on 127.0.0.1, prints one JSON
  line ``{"uri": ..., "version": ...}`` and serves until its stdin closes (so it never outlives the
  test run, even after ``kill -9`` of pytest).
* neither: :func:`server_uri` returns None and :func:`skip_reason` says why; Mongo tests are skipped
  with that reason, never silently.

The tests use the real ``pymongo`` driver over a socket in both cases. The launcher part only uses the
standard library at import time, so it runs under the emulator's interpreter without the project.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
URI_ENV = "FHIR_TEST_MONGO_URI"
PYTHON_ENV = "FHIR_TEST_MONGOECO_PYTHON"
MONGO_VENV = ROOT / ".venv-mongo"
START_TIMEOUT_S = 60.0
PING_TIMEOUT_S = 30.0


class _Server:
    """The one server of this process, started on first use and stopped at exit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = False
        self.uri: str | None = None
        self.description = ""
        self.reason: str | None = None
        self.process: subprocess.Popen[str] | None = None
        self.log: Path | None = None

    def start(self) -> None:
        with self.lock:
            if self.started:
                return
            self.started = True
            try:
                self._start()
            except _Unavailable as exc:
                self.uri, self.reason = None, str(exc)
                self.description = f"skipped: {exc}"
                self._stop()

    def _start(self) -> None:
        real = os.environ.get(URI_ENV, "").strip()
        if real:
            _ping(real)
            self.uri = real
            self.description = f"real MongoDB at {_redact(real)} ({URI_ENV})"
            return
        python = _emulator_python()
        fd, log = tempfile.mkstemp(prefix="mongoeco-", suffix=".log")
        self.log = Path(log)
        try:
            with os.fdopen(fd, "w") as stderr:  # a file, not a pipe: a chatty server never blocks
                self.process = subprocess.Popen(
                    [str(python), str(Path(__file__).resolve()), "serve"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT,
                )
        except OSError as exc:
            raise _Unavailable(f"cannot run {python}: {exc}") from exc
        atexit.register(self._stop)
        line = _read_line(self.process, START_TIMEOUT_S)
        if line is None:
            err = self._stop()
            raise _Unavailable(f"the mongoeco emulator ({python}) did not start: {err or 'no output'}")
        hello = json.loads(line)
        _ping(hello["uri"])
        self.uri = hello["uri"]
        self.description = (f"mongoeco {hello['version']} emulator, not MongoDB "
                            f"({hello['uri'].split('/?')[0]}, {python})")

    def _stop(self) -> str:
        """Stop the emulator (closing its stdin is enough; then terminate, then kill)."""
        process, self.process = self.process, None
        if process is None:
            return ""
        err = ""
        try:
            if process.stdin:
                process.stdin.close()
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.log is not None:
            lines = self.log.read_text(errors="replace").strip().splitlines()
            err = " | ".join(lines[-3:])
            self.log.unlink(missing_ok=True)
            self.log = None
        return err


class _Unavailable(Exception):
    pass


def _emulator_python() -> Path:
    explicit = os.environ.get(PYTHON_ENV)
    python = Path(explicit) if explicit else MONGO_VENV / "bin" / "python"
    if not python.exists():
        raise _Unavailable(
            f"no {URI_ENV} and no mongoeco emulator: {python} does not exist (`make mongo-env` creates "
            "it; it needs Python 3.13, looked for under pyenv and on PATH)")
    return python


def _read_line(process: subprocess.Popen[str], timeout: float) -> str | None:
    """The launcher's first stdout line, or None if it exits or takes longer than ``timeout``."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline() if process.stdout
                                                           else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    line = result[0].strip() if result else ""
    return line or None


def _ping(uri: str) -> None:
    try:
        import pymongo
        from pymongo.errors import PyMongoError
    except ImportError as exc:
        raise _Unavailable(f"pymongo is not installed in the test virtualenv ({exc})") from exc
    deadline = time.monotonic() + PING_TIMEOUT_S
    while True:
        client: Any = pymongo.MongoClient(uri, serverSelectionTimeoutMS=2000)
        try:
            client.admin.command("ping")
            return
        except PyMongoError as exc:
            if time.monotonic() > deadline:
                raise _Unavailable(f"MongoDB at {_redact(uri)} does not answer ping: {exc}") from exc
        finally:
            client.close()
        time.sleep(0.2)


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


_SERVER = _Server()


def server_uri() -> str | None:
    """The server's URI (starting the emulator on first call), or None: see :func:`skip_reason`."""
    _SERVER.start()
    return _SERVER.uri


def skip_reason() -> str:
    _SERVER.start()
    return _SERVER.reason or ""


def describe() -> str:
    """Which server the suite runs against, for the pytest header."""
    _SERVER.start()
    return _SERVER.description


def with_database(uri: str, name: str) -> str:
    """``uri`` with its path (the default database) replaced by ``name``, options kept."""
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def fresh_database(uri: str) -> Iterator[str]:
    """A URI naming a new database ``ehc_test_<uuid>``, dropped afterwards."""
    import pymongo

    name = f"ehc_test_{uuid.uuid4().hex}"
    try:
        yield with_database(uri, name)
    finally:
        client: Any = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
        try:
            client.drop_database(name)
        finally:
            client.close()


# -- the launcher (runs under .venv-mongo's Python 3.13, needs only mongoeco and pymongo there) ----

def _serve() -> int:
    import asyncio

    import mongoeco
    from mongoeco.wire import AsyncMongoEcoProxyServer

    async def main() -> None:
        server = AsyncMongoEcoProxyServer(host="127.0.0.1", port=0)
        address = await server.start()
        print(json.dumps({"uri": address.uri, "version": mongoeco.__version__}), flush=True)
        try:
            # serve until the parent closes our stdin (or dies)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            await server.close()

    asyncio.run(main())
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        print(f"usage: {sys.argv[0]} serve", file=sys.stderr)
        sys.exit(2)
    sys.exit(_serve())

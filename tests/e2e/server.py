"""Start the real ``fhir-server serve`` (gunicorn, several workers) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fhir_server_command() -> list[str]:
    script = Path(sys.executable).parent / "fhir-server"
    return [str(script)] if script.exists() else [sys.executable, "-m", "fhir_server"]


class Server:
    def __init__(self, db: Path, workers: int = 2, env: dict[str, str] | None = None) -> None:
        self.db = db
        self.workers = workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.root = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "FHIR_ACCESS_LOG": "1", "FHIR_AUTH": "off",
                    "FHIR_ENFORCE_PROFILES": "off", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = db.parent / f"server-{self.port}.log"

    def start(self) -> Server:
        command = [*fhir_server_command(), "serve", "--port", str(self.port),
                   "--workers", str(self.workers), "--store", f"sqlite:///{self.db}"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, env=self.env, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.root}/readyz", timeout=1).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        """SIGKILL the master and every worker at once: no graceful anything."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

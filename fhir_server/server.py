"""Running the app under gunicorn (the app factory is called in each worker, after the fork)."""

from __future__ import annotations

import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from fhir_server.config import Settings


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from fhir_server.app import create_app

        return create_app(self.settings)


AUTH_OFF_WARNING = ("WARNING: FHIR_AUTH=off: no OAuth, every request can read and write everything."
                    " For local development only; never expose this server.")


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 2,
    threads: int = 4,
    worker_class: str = "gthread",
) -> None:
    # Open the store once in the master: creates the database and schema before workers start
    # and fails fast, with a message, on a bad store URL.
    from fhir_server.store import open_store

    open_store(settings).close()
    public = settings.base_url or f"http://{host}:{port}/fhir"

    def when_ready(server: Any) -> None:
        print(f"ehc-fhir is serving FHIR R4 at {public}  (store: {settings.store_url})",
              file=sys.stderr, flush=True)
        if not settings.auth:
            print(AUTH_OFF_WARNING, file=sys.stderr, flush=True)

    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": worker_class,
        "threads": threads,
        "keepalive": 5,
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": None,  # the app writes its own JSON access log
        "errorlog": "-",
        "when_ready": when_ready,
        "control_socket_disable": True,  # several servers may run on one machine
    }
    _Gunicorn(settings, options).run()

"""A real HTTPS server on 127.0.0.1 publishing JWKS (and misbehaving on request), with a
self-signed certificate for localhost/127.0.0.1 generated per run."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class JwksServer:
    """``/jwks.json`` serves :attr:`jwks` with :attr:`cache_control`; other paths misbehave."""

    def __init__(self, directory: Path) -> None:
        self.cert, key = self_signed(directory)
        self.jwks: dict[str, Any] = {"keys": []}
        self.cache_control = "max-age=600"
        self.hits: Counter[str] = Counter()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                owner.hits[self.path] += 1
                path = self.path.split("?")[0]
                if path == "/jwks.json":
                    self._send(200, json.dumps(owner.jwks).encode(),
                               {"Cache-Control": owner.cache_control})
                elif path == "/redirect":
                    self._send(302, b"", {"Location": "/jwks.json"})
                elif path == "/big":
                    filler = [{"kid": f"k{n}", "kty": "oct"} for n in range(4000)]
                    self._send(200, json.dumps({"keys": filler}).encode(), {})
                elif path == "/big-unannounced":
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b'{"keys": [' + b" " * 200_000 + b"]}")
                elif path == "/slow":
                    time.sleep(2)
                    self._send(200, json.dumps(owner.jwks).encode(), {})
                elif path == "/not-json":
                    self._send(200, b"<html>hello</html>", {})
                else:
                    self._send(404, b"{}", {})

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    return  # the client gave up (timeouts under test): nothing to answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str = "/jwks.json", host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context trusting this server's certificate."""
        return ssl.create_default_context(cafile=str(self.cert))

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

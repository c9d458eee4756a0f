"""A forward proxy on 127.0.0.1 that answers CONNECT and tunnels the bytes, recording each target.

What HTTPS_PROXY points at behind most corporate firewalls, reduced to what the tests need: the
client's TLS runs end to end through the tunnel, so the proxy sees only where it was asked to go.
Written here rather than taken from a package (proxy.py): that one starts acceptor processes and
plugins to tell us what a 40-line tunnel records directly.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import threading


class _Tunnel(socketserver.StreamRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        request_line = self.rfile.readline(8192).decode("latin-1").strip()
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # the request's headers
        method, _, rest = request_line.partition(" ")
        target = rest.split(" ", 1)[0]
        if method != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        with self.server.lock:
            self.server.targets.append(target)
        host, _, port = target.rpartition(":")
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with upstream, selectors.DefaultSelector() as selector:
            # Nothing is left in rfile's buffer: a client starts TLS only after our 200.
            selector.register(self.connection, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, self.connection)
            while True:
                for key, _ in selector.select(timeout=30):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)


class ConnectProxy(socketserver.ThreadingTCPServer):
    """``with ConnectProxy() as proxy:`` listens on a free loopback port; ``proxy.url`` for HTTPS_PROXY."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.lock = threading.Lock()
        self.targets: list[str] = []  # host:port of each CONNECT, in order
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ConnectProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self.shutdown()
        self.server_close()

"""A real HTTP server on 127.0.0.1 for feed tests: serves configured routes (files, redirects,
errors, slow and oversize answers), honours conditional GET, and records every request's
headers so a test can see what the fetcher sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DATA = Path(__file__).parent / "data" / "feeds"


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    location: str | None = None  # for redirects
    delay: float = 0.0  # seconds before answering
    send_length: bool = True  # False: no Content-Length, body ends when the connection closes
    trickle: float = 0.0  # seconds between single bytes of the body (a server that dawdles)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class FeedServer:
    host: str
    port: int
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url(path)

    def add_file(self, path: str, name: str, **options: object) -> str:
        return self.add(path, Route(body=(DATA / name).read_bytes(), **options))  # type: ignore[arg-type]

    def seen(self, path: str) -> list[dict[str, str]]:
        return [r.headers for r in self.requests if r.path == path]


def _handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            server.requests.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
            route = server.routes.get(self.path)
            if route is None:
                self.send_error(404, "Not Found")
                return
            try:
                if route.delay:
                    time.sleep(route.delay)
                self._answer(route)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def _answer(self, route: Route) -> None:
            inm = self.headers.get("If-None-Match")
            ims = self.headers.get("If-Modified-Since")
            fresh = (route.etag is not None and inm == route.etag) or (
                route.etag is None and route.last_modified is not None
                and ims == route.last_modified)
            self.send_response(304 if fresh else route.status)
            if route.etag:
                self.send_header("ETag", route.etag)
            if route.last_modified:
                self.send_header("Last-Modified", route.last_modified)
            if route.location:
                self.send_header("Location", route.location)
            if fresh:
                self.end_headers()
                return
            self.send_header("Content-Type", route.content_type)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.send_length:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            if not route.trickle:
                self.wfile.write(route.body)
                return
            for i in range(len(route.body)):
                self.wfile.write(route.body[i:i + 1])
                self.wfile.flush()
                time.sleep(route.trickle)

    return Handler


@contextmanager
def running_server() -> Iterator[FeedServer]:
    """A threaded HTTP server on a free port of 127.0.0.1, stopped on exit."""
    server = FeedServer("127.0.0.1", 0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()

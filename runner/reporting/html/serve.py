"""`runner view`: the HTML report served on loopback, rendered again on every load of the page, so a
reload during a run shows what is stored by then. Only 127.0.0.1 is bound: the page holds every
prompt and answer, and the server has no authentication."""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = "127.0.0.1"


def page_server(render: Callable[[], str], port: int = 0) -> ThreadingHTTPServer:
    """A server (not started) answering GET / with `render()`; anything else is 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/", "/index.html"):
                self.send_error(404)
                return
            try:
                body = render().encode("utf-8")
            except Exception as exc:  # the store changed under us (or a bug): say so in the page, keep serving
                self.send_error(500, explain=f"{type(exc).__name__}: {exc}")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the terminal shows the URL once, not a line per request

    return ThreadingHTTPServer((LOOPBACK, port), Handler)

"""The dashboard's HTTP server: the page and its script from the installed package, the views as JSON.

Used by `python -m bqnn.dashboard DIR [DIR ...]` (bqnn/dashboard/__main__.py):

    server = make_server([Run("runs/a"), Run("runs/b")], host="127.0.0.1", port=8050)
    server.serve_forever()

Routes (GET only): `/` the page; `/static/NAME` its script, style and chart library; `/api/runs` the runs served;
`/api/run/K` run K's overview; `/api/run/K/candidates?since=N` its candidates from row N on; `/api/run/K/candidate/ID`
one candidate. Python's standard `http.server` (a thread per request), bound to localhost by default: a dashboard
for a login node is reached through `ssh -L`, and serves nothing but files of the package and views of the runs it
was given. A run that cannot be read (no checkpoint yet, a newer schema, damage) answers its error as JSON. No torch.
"""
from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from ..run import checkpoint
from .views import Run

STATIC = Path(__file__).resolve().parent / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".md": "text/plain; charset=utf-8"}
ROUTE = re.compile(r"^/api/run/(\d+)(?:/(candidates|candidate/(\d+)))?$")


def make_server(runs: list[Run], host: str = "127.0.0.1", port: int = 8050) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: a terminal is not a log
            pass

        def do_GET(self) -> None:  # noqa: N802  (http.server's name)
            url = urlparse(self.path)
            if url.path in ("/", "/index.html"):
                self._file(STATIC / "index.html")
            elif url.path.startswith("/static/"):
                name = url.path[len("/static/"):]
                path = STATIC / name
                if "/" in name or not path.is_file():
                    self._json({"error": f"no such file: {name}"}, 404)
                else:
                    self._file(path)
            elif url.path == "/api/runs":
                self._json([{"id": k, "name": r.name, "dir": str(r.dir)} for k, r in enumerate(runs)])
            else:
                self._api(url.path, parse_qs(url.query))

        def _api(self, path: str, query: dict[str, list[str]]) -> None:
            m = ROUTE.match(path)
            if not m or int(m.group(1)) >= len(runs):
                self._json({"error": f"no such view: {path}"}, 404)
                return
            run = runs[int(m.group(1))]
            try:
                if m.group(2) is None:
                    self._json(run.overview())
                elif m.group(2) == "candidates":
                    self._json(run.candidates(int(query.get("since", ["0"])[0] or 0)))
                else:
                    view = run.candidate(int(m.group(3)))
                    self._json(view if view is not None else {"error": "no such candidate"}, 200 if view else 404)
            except checkpoint.CheckpointError as e:
                self._json({"error": str(e), "name": run.name}, 503)

        def _file(self, path: Path) -> None:
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", TYPES.get(path.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, value: Any, code: int = 200) -> None:
            body = json.dumps(value).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return ThreadingHTTPServer((host, port), Handler)

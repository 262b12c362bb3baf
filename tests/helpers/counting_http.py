"""A real HTTP file server for tests that count what left it (the Mesos fetcher's downloads)."""

from __future__ import annotations

from http.server import SimpleHTTPRequestHandler


class CountingHandler(SimpleHTTPRequestHandler):
    """Serves the directory and counts GETs by path in `gets`: the copies that left the
    server. Quiet: no access log on stderr."""

    def __init__(self, gets: dict[str, int], *args, **kwargs):
        self.gets = gets
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self.gets[self.path] = self.gets.get(self.path, 0) + 1
        super().do_GET()

    def log_message(self, *args):
        pass

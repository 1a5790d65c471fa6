"""A static HTTP server that is also a plain-HTTP forward proxy, for appc tests.

`GET http://HOST/PATH` (a proxied request) and `GET /PATH` with `Host: HOST` both serve
ROOT/HOST/PATH; with the query `ac-discovery=1` they serve ROOT/HOST/PATH/discovery.html.
CONNECT (an HTTPS tunnel) is refused, so clients fall back to plain HTTP only when they
are allowed to. Every request line is appended to LOG (the second argument). The port is printed
on the first line of stdout.
"""
import http.server
import os
import sys
import urllib.parse

ROOT = sys.argv[1]
LOG = sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        with open(LOG, "a") as log:
            log.write(self.requestline + "\n")

    def target(self):
        url = urllib.parse.urlsplit(self.path)
        host = (url.netloc or self.headers.get("Host", "")).split(":")[0]
        path = os.path.normpath(url.path).lstrip("/")
        query = urllib.parse.parse_qs(url.query)
        parts = [ROOT, host, path]
        if query.get("ac-discovery") == ["1"]:
            parts.append("discovery.html")
        return os.path.join(*[p for p in parts if p])

    def do_GET(self):
        self.serve(body=True)

    def do_HEAD(self):
        self.serve(body=False)

    def serve(self, body):
        path = self.target()
        if not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(path, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_CONNECT(self):
        self.send_response(501)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()

"""A minimal OTLP/HTTP endpoint for benchmarks: accepts ``POST /v1/traces``, counts the spans.

Run as its own process (``python bench/otlp_sink.py PORT_FILE``) so that receiving costs the
benchmarked process nothing; it writes its port to PORT_FILE and, on ``GET /count``, answers
with the number of spans received so far.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

received = 0


class Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        global received
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        req = ExportTraceServiceRequest.FromString(body)
        received += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        body = str(received).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()

"""A stand-in for `llama-server` that only answers /health, so LocalModelServer's lifecycle
(port choice, readiness wait, stop, the `serve` command) is tested without the real build.

    fake_llama_server.py --port N [--host H] [...ignored llama-server flags]

It answers 503 ("loading model") for its first health checks, like the real server, then 200."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main(argv: list[str]) -> None:
    host = argv[argv.index("--host") + 1] if "--host" in argv else "127.0.0.1"
    port = int(argv[argv.index("--port") + 1])
    checks = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            checks["n"] += 1
            ready = checks["n"] > 2
            body = json.dumps(
                {"status": "ok"} if ready else {"error": {"message": "Loading model"}}
            ).encode()
            self.send_response(200 if ready else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            print(format % args, flush=True)

    print(f"fake llama-server listening on {host}:{port} args={argv}", flush=True)
    ThreadingHTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])

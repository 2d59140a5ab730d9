#!/usr/bin/env python3
"""The transform exercise as it is classically taught: a thread per connection,
reading lines, answering each with the transformed text. The baseline the
gateway is measured against in bench/gateway.py (same protocol, same lines).

Usage: classic_transform_server.py [PORT]   (0 picks a free port; prints it)
"""

import socketserver
import sys


class TransformHandler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, text = line.partition(" ")
            verb = verb.upper()
            if verb == "UPPER":
                answer = text.upper()
            elif verb == "LOWER":
                answer = text.lower()
            elif verb == "REVERSE":
                answer = text[::-1]
            elif verb == "QUIT":
                self.wfile.write(b"OK bye\n")
                return
            else:
                answer = f"ERR INVALID_ARGUMENT unknown command {verb!r}"
            self.wfile.write(answer.encode("utf-8") + b"\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    with Server(("127.0.0.1", port), TransformHandler) as server:
        print(f"classic listening on 127.0.0.1:{server.server_address[1]}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()

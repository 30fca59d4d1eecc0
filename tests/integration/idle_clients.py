#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Idle client connections for the ingress's stop tests (ingress_stop.sh, tls.sh).

idle_clients.py READYFILE SECONDS SPEC...: opens one connection per SPEC, each answered
once (so that the ingress has accepted it and holds it idle), writes READYFILE, then waits
at most SECONDS for every one to end (EOF or reset). Prints "ended N of M"; exit 0 if all
did. SPEC:
  h1:PORT[:PATH]        HTTP/1.1 keep-alive on 127.0.0.1:PORT (GET PATH, default
                        /no-such-route: any answer will do)
  h2:PORT               HTTP/2 with prior knowledge, settings exchanged
  tls-h1:PORT:CAFILE    HTTP/1.1 over TLS (ALPN http/1.1), server name localhost
  tls-h2:PORT:CAFILE    HTTP/2 over TLS (ALPN h2), settings exchanged
"""
import select
import socket
import ssl
import sys
import time

HOST = "127.0.0.1"


def plain(port):
    return socket.create_connection((HOST, port), timeout=5)


def tls(port, ca, alpn):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols([alpn])
    s = ctx.wrap_socket(plain(port), server_hostname="localhost")
    if s.selected_alpn_protocol() != alpn:
        sys.exit("ALPN: got %r, not %s" % (s.selected_alpn_protocol(), alpn))
    return s


def h1(s, path):
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("HTTP/1 connection closed before its answer")
        data += chunk
    if not data.startswith(b"HTTP/1.1 "):
        sys.exit("HTTP/1 answer: %r" % data[:64])
    return s


def h2(s):
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    head = b""
    while len(head) < 9:
        chunk = s.recv(9 - len(head))
        if not chunk:
            sys.exit("HTTP/2 connection closed before the server's SETTINGS")
        head += chunk
    if head[3] != 4:
        sys.exit("HTTP/2: first frame type %d, not SETTINGS" % head[3])
    s.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")  # SETTINGS ack
    return s


def connect(spec):
    kind, _, rest = spec.partition(":")
    parts = rest.split(":")
    if kind == "h1":
        return h1(plain(int(parts[0])), parts[1] if len(parts) > 1 else "/no-such-route")
    if kind == "h2":
        return h2(plain(int(parts[0])))
    if kind == "tls-h1":
        return h1(tls(int(parts[0]), parts[1], "http/1.1"), "/no-such-route")
    if kind == "tls-h2":
        return h2(tls(int(parts[0]), parts[1], "h2"))
    sys.exit("unknown connection spec %r" % spec)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    readyf, secs = sys.argv[1], float(sys.argv[2])
    conns = [connect(spec) for spec in sys.argv[3:]]
    for s in conns:
        s.setblocking(False)  # read what is there, then back to select()
    open(readyf, "w").close()
    left = set(conns)
    deadline = time.monotonic() + secs
    while left and time.monotonic() < deadline:
        r, _, _ = select.select(list(left), [], [], 0.2)
        for s in r:
            try:
                while s.recv(65536):
                    pass  # GOAWAY and the like: read until the end
            except (BlockingIOError, ssl.SSLWantReadError):
                continue
            except OSError:
                pass
            left.discard(s)
    print("ended %d of %d" % (len(conns) - len(left), len(conns)), flush=True)
    sys.exit(1 if left else 0)


main()

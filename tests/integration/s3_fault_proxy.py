#!/usr/bin/env python3
"""A fault-injecting HTTP proxy on 127.0.0.1 in front of the project's S3 test server, for
tests/integration/test_cloud_faults.sh. It forwards each request byte for byte (the Host header
too, so SigV4 signatures stay valid), one upstream connection per request, and injects faults:

  --fail-put-suffix S   PUT to a key ending in S: 500 InternalError, every time
  --drop-put-suffix S   PUT to a key ending in S reaches the server, its answer is lost, every time
  --drop-complete N     the first N CompleteMultipartUpload requests reach the server, but their
                        answers are lost (the client connection is closed)
  --freeze-parts        UploadPart requests are read and never answered
  --every-nth-503 N     every Nth request: 503 SlowDown (not forwarded)
  --die-after-parts N   after N UploadPart requests the proxy stops: every later connection is
                        refused (a server that died mid-upload)
  --conditional         emulates a server that honours If-None-Match: * on PutObject and
                        CompleteMultipartUpload (412 when the key exists), for keys written or
                        deleted through this proxy; the header is not forwarded (Swift says 501)

Usage: s3_fault_proxy.py PORT_FILE UPSTREAM_PORT LOG_FILE [options]. Writes its port to
PORT_FILE once listening. One line per request to LOG_FILE: METHOD PATH STATUS user-agent
content-type. Binds 127.0.0.1 only.
"""
import argparse
import hashlib
import hmac
import os
import signal
import socket
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("port_file")
ap.add_argument("upstream", type=int)
ap.add_argument("log")
ap.add_argument("--fail-put-suffix")
ap.add_argument("--drop-complete", type=int, default=0)
ap.add_argument("--drop-put-suffix")
ap.add_argument("--freeze-parts", action="store_true")
ap.add_argument("--every-nth-503", type=int, default=0)
ap.add_argument("--die-after-parts", type=int, default=-1)
ap.add_argument("--conditional", action="store_true")
a = ap.parse_args()

lock = threading.Lock()
state = {"n": 0, "parts": 0, "dropped": 0, "dead": False}
existing = set()  # keys written through the proxy (--conditional)
cond_lock = threading.Lock()
logf = open(a.log, "a", buffering=1)


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers.append((k.strip(), v.strip()))
    hd = {k.lower(): v for k, v in headers}
    if hd.get("expect", "").lower() == "100-continue":
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    n = int(hd.get("content-length", "0"))
    while len(body) < n:
        chunk = conn.recv(min(1 << 20, n - len(body)))
        if not chunk:
            return None
        body += chunk
    return method, target, headers, hd, body


def reply(conn, status, code, msg):
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{msg}</Message></Error>".encode()
    conn.sendall(f"HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)


def resign_without(method, target, headers, drop):
    """The request's SigV4 Authorization recomputed without header `drop` (the proxy strips
    If-None-Match, which the client signed; the secret is the test server's, from the env)."""
    hd = {k.lower(): v for k, v in headers}
    auth = hd["authorization"]
    algo, rest = auth.split(" ", 1)
    parts = dict(p.strip().split("=", 1) for p in rest.split(","))
    signed = [h for h in parts["SignedHeaders"].split(";") if h != drop]
    cred = parts["Credential"].rsplit("/", 4)  # access key (may hold '/'), date, region, service, aws4_request
    path, _, query = target.partition("?")
    canon = "\n".join([method, path, query, "".join(f"{h}:{' '.join(hd[h].split())}\n" for h in signed), ";".join(signed),
                       hd["x-amz-content-sha256"]])
    scope = "/".join(cred[1:])
    sts = "\n".join([algo, hd["x-amz-date"], scope, hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
    for piece in cred[1:]:
        k = hmac.new(k, piece.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    new = f"{algo} Credential={parts['Credential']}, SignedHeaders={';'.join(signed)}, Signature={sig}"
    return [(k2, new if k2.lower() == "authorization" else v) for k2, v in headers]


def forward(method, target, headers, body):
    up = socket.create_connection(("127.0.0.1", a.upstream))
    skip = {"expect", "connection"}
    if a.conditional and any(k.lower() == "if-none-match" for k, _ in headers):
        skip.add("if-none-match")
        headers = resign_without(method, target, headers, "if-none-match")
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers if k.lower() not in skip)
    up.sendall(head.encode("latin-1") + b"Connection: close\r\n\r\n" + body)
    resp = b""
    while True:
        chunk = up.recv(1 << 20)
        if not chunk:
            break
        resp += chunk
    up.close()
    status = int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/") else 0
    return resp, status


def handle(conn):
    try:
        req = read_request(conn)
        if req is None:
            return
        method, target, headers, hd, body = req
        path, _, query = target.partition("?")
        is_part = method == "PUT" and "partNumber=" in query
        is_complete = method == "POST" and "uploadId=" in query
        with lock:
            state["n"] += 1
            n = state["n"]
            if is_part:
                state["parts"] += 1
                if a.die_after_parts >= 0 and state["parts"] > a.die_after_parts:
                    state["dead"] = True
            dead = state["dead"]
        status = 0
        note = f"{method} {target}"
        if dead:
            logf.write(f"{note} DEAD\n")
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if a.every_nth_503 and n % a.every_nth_503 == 0:
            reply(conn, 503, "SlowDown", "Please reduce your request rate.")
            status = 503
        elif a.fail_put_suffix and method == "PUT" and not query and path.endswith(a.fail_put_suffix):
            reply(conn, 500, "InternalError", "injected failure")
            status = 500
        elif a.freeze_parts and is_part:
            logf.write(f"{note} FROZEN\n")
            time.sleep(3600)
            return
        elif a.conditional and hd.get("if-none-match") == "*" and (method == "PUT" and not query or is_complete):
            with cond_lock:
                if path in existing:
                    reply(conn, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
                    status = 412
                else:
                    resp, status = forward(method, target, headers, body)
                    if 200 <= status < 300 and b"<Error>" not in resp:
                        existing.add(path)
                    conn.sendall(resp)
        else:
            resp, status = forward(method, target, headers, body)
            if a.conditional and 200 <= status < 300 and (method == "PUT" and not query or is_complete):
                with cond_lock:
                    existing.add(path)
            if a.conditional and method == "DELETE" and not query:
                with cond_lock:
                    existing.discard(path)
            drop = bool(a.drop_put_suffix and method == "PUT" and not query and path.endswith(a.drop_put_suffix))
            if is_complete:
                with lock:
                    if state["dropped"] < a.drop_complete:
                        state["dropped"] += 1
                        drop = True
            if drop:
                status = -status
            else:
                conn.sendall(resp)
        logf.write(f"{note} {status} ua={hd.get('user-agent', '')} ct={hd.get('content-type', '')}\n")
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.rename(a.port_file + ".tmp", a.port_file)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
main()

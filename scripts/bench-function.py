#!/usr/bin/env python3
"""Runs a release receiver binary as Lambda would and prints what it costs.

A minimal Lambda Runtime API (the protocol every Lambda runtime speaks) serves N signed Stripe
events (distinct events, distinct invoices) to the real `payment-events` binary. Printed: time
from process start to the first answer, CPU time per warm event, peak memory (VmHWM), and the
answers' statuses.

AWS behind it, one of:
  --aws stub  (default) a keep-alive HTTP stub answering every DynamoDB and SQS call with an
              empty success, as fast as it can: isolates the function's own CPU and memory, and
              keeps connections open as AWS does. 10,000 events take a few seconds.
  --aws moto  the local emulator (scripts/emulator.py), real conditional writes. moto answers
              every call with `Connection: close` and slows as the table grows (about 70 ms per
              event after a few hundred), so use a few hundred events.

Usage (after `cargo build --release -p payment-events` and `cargo build -p hookline-cli`):

    .venv/bin/python scripts/bench-function.py [--events 10000] [--aws stub|moto]
"""
import argparse, hashlib, hmac, json, os, socket, subprocess, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "whsec_aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ="
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, tries=150):
    for _ in range(tries):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer")


class Proc:
    def __init__(self, popen):
        self.popen = popen

    def stop(self):
        self.popen.kill()


def start_moto(env):
    port = free_port()
    moto = subprocess.Popen([os.path.join(ROOT, ".venv/bin/python"), os.path.join(ROOT, "scripts/emulator.py"),
                             "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    wait_http(f"{endpoint}/moto-api/")
    cli = next(p for p in (os.path.join(ROOT, "target", d, "hookline") for d in ("release", "debug")) if os.path.exists(p))
    up = subprocess.run([cli, "local", "up", "--endpoint", endpoint, "--table", "hookline-bench", "--queue", "hookline-bench"],
                        env=env, capture_output=True, text=True)
    if up.returncode != 0:
        moto.kill()
        sys.exit(f"local up failed: {up.stderr}")
    queue_url = next(l.split()[-1] for l in up.stdout.splitlines() if l.startswith("queue "))
    return Proc(moto), endpoint, queue_url


def start_stub():
    """Every AWS JSON-protocol call answered with an empty success, on kept-alive connections."""

    class Stub(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("x-amzn-RequestId", "stub")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    class Handle:
        def stop(self):
            server.shutdown()

    return Handle(), f"http://127.0.0.1:{port}"


def apigw_event(n, now):
    sample = json.load(open(os.path.join(ROOT, "events/payment-events/invoice.paid.json")))
    sample["id"] = f"evt_bench_{n}"
    sample["data"]["object"]["id"] = f"in_bench_{n}"
    sample["created"] = now
    body = json.dumps(sample, separators=(",", ":"))
    sig = hmac.new(SECRET.encode(), f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/stripe",
        "rawPath": "/webhooks/stripe",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "stripe-signature": f"t={now},v1={sig}", "host": "bench.local"},
        "requestContext": {
            "accountId": "000000000000", "apiId": "bench", "domainName": "bench.local", "domainPrefix": "bench",
            "http": {"method": "POST", "path": "/webhooks/stripe", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": f"r{n}", "routeKey": "POST /webhooks/stripe", "stage": "$default", "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": now * 1000,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/payment-events"))
    ap.add_argument("--aws", choices=["stub", "moto"], default="stub")
    args = ap.parse_args()

    env = dict(os.environ, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
               TABLE_NAME="hookline-bench", WEBHOOK_SECRETS=SECRET, AWS_LAMBDA_LOG_LEVEL="error")
    if args.aws == "moto":
        aws, env["AWS_ENDPOINT_URL"], env["FOLLOWUP_QUEUE_URL"] = start_moto(env)
    else:
        aws, env["AWS_ENDPOINT_URL"] = start_stub()
        env["FOLLOWUP_QUEUE_URL"] = env["AWS_ENDPOINT_URL"] + "/000000000000/hookline-bench"

    now = int(time.time())
    events = [apigw_event(i, now) for i in range(args.events)]
    statuses, lock, done = {}, threading.Lock(), threading.Event()
    first_answer = {}
    state = {"next": 0}

    class Api(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real Runtime API

        def setup(self):
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every exchange.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *a):
            pass

        def do_GET(self):
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= len(events):
                done.set()
                time.sleep(3600)
                return
            payload = json.dumps(events[i]).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", f"req-{i}")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 10000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:payment-events")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-0-0")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if "/response" in self.path:
                if not first_answer:
                    first_answer["t"] = time.perf_counter()
                    first_answer["cpu"] = cpu_secs(proc.pid)
                try:
                    st = json.loads(json.loads(body)["body"])["status"]
                except Exception:
                    st = f"unparsed: {body[:200]!r}"
                with lock:
                    statuses[st] = statuses.get(st, 0) + 1
            else:
                with lock:
                    statuses["error"] = statuses.get("error", 0) + 1
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    api_port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", api_port), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{api_port}"
    env.update(AWS_LAMBDA_FUNCTION_NAME="payment-events", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_FUNCTION_VERSION="1")

    start = time.perf_counter()
    proc = subprocess.Popen([args.binary], env=env)
    done.wait(timeout=3600)
    end = time.perf_counter()
    hwm = peak_kib(proc.pid)
    cpu_total = cpu_secs(proc.pid)
    proc.kill()
    aws.stop()
    server.shutdown()
    warm = max(args.events - 1, 1)
    print(f"binary: {args.binary} ({os.path.getsize(args.binary) / 1e6:.1f} MB), AWS: {args.aws}")
    print(f"events: {args.events}, answers: {statuses}")
    print(f"first answer after process start: {(first_answer['t'] - start) * 1000:.1f} ms (includes the first AWS round trips)")
    print(f"CPU per warm event (user+sys of the function process): {(cpu_total - first_answer['cpu']) / warm * 1e6:.0f} us")
    print(f"wall per event incl. AWS round trips: {(end - first_answer['t']) / warm * 1000:.2f} ms")
    print(f"peak memory (VmHWM): {hwm / 1024:.1f} MiB")


def cpu_secs(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main()

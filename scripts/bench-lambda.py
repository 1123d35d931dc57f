#!/usr/bin/env python3
"""`make bench-lambda`: release functions run as Lambda runs them, beside their floors.

A minimal Lambda Runtime API (the protocol every Lambda runtime speaks: GET .../next hands an
event, POST .../response takes the answer) serves N signed Stripe `invoice.paid` events (distinct
events, distinct invoices) to each subject, one process per run, the subjects interleaved
(A B C D A B C D ...) so that the machine's drift hits them alike:

  receiver   target/release/payment-events: verification, mapping, one TransactWriteItems and
             one SendMessageBatch per new event
  sdk-floor  bench/src/bin/floor_sdk.rs: the same runtime, SDK configuration and two calls on a
             fixed request, nothing else (what the two AWS calls cost by themselves)
  hello-ct   bench/src/bin/floor_runtime.rs, current-thread tokio (the receivers' flavour)
  hello-mt   the same binary, multi-thread tokio (`#[tokio::main]`'s default)
  hello-http bench/src/bin/hello_http.rs: hello world on `lambda_http` (the API Gateway event
             parsed into a request and the answer built, as the receivers do), current-thread
  sdk-defaults, sdk-no-env, sdk-ssp-on, sdk-system-roots  (with --subjects) the SDK floor with
             the SDK's default settings, or with one of Hookline's settings (shared/src/config.rs,
             SdkTuning) undone: credentials and region from the provider chains, stalled-stream
             protection on, the system's root certificates loaded (plain stub only: the TLS
             stub's certificate is trusted through SSL_CERT_FILE, which loads the system way)
  sdk-warm-up  (with --subjects) the SDK floor opening its DynamoDB and SQS connections
             concurrently during init, as the receivers do (Receiver::open_connections)
  receiver-warn  (with --subjects) the receiver at log level WARN: what its INFO line costs
  receiver-before  (with --before BINARY) an earlier build of payment-events

AWS behind them (--aws, comma-separated):
  stub  a keep-alive HTTP stub answering every DynamoDB and SQS call with an empty success
  tls   the same stub behind TLS (a certificate made for the run, trusted through
        SSL_CERT_FILE, which the SDK's rustls root loading honours): cold figures include the
        handshakes, as in AWS
  moto  the local emulator (scripts/emulator.py): real conditional writes, plain HTTP, slow; use
        a few hundred events

Printed per AWS and subject, median (min-max) over the runs: init (spawn to the first
GET /next), init CPU, first answer (spawn to the first response: the cold start as a sender
meets it), warm latency median and p99 (event handed to answer taken), CPU per warm event
(user+sys of the process after its first answer, over the warm events), peak RSS (VmHWM). Then
the ratios of the receiver to each floor. Figures go in docs/BENCHMARKS.md with this command.

Usage: make bench-lambda [BENCH_ARGS="--events 5000 --runs 3 --aws stub,tls"]

Profiling: BENCH_WRAP="perf record -F 2000 -g -o rx.data" runs each subject under the given
command (stopped with SIGINT, so it writes its data); with BENCH_PROFILE=profiling and
`cargo build --profile profiling -p payment-events -p hookline-bench`, the profile has symbols.
"""
import argparse, hashlib, hmac, json, os, signal, socket, ssl, statistics, subprocess, sys, tempfile
import threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "whsec_aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ="
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# BENCH_PROFILE=profiling runs the symbolised builds of `cargo build --profile profiling`.
RELEASE = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                       os.environ.get("BENCH_PROFILE", "release"))

SUBJECTS = {
    "receiver": (os.path.join(RELEASE, "payment-events"), {}),
    "sdk-floor": (os.path.join(RELEASE, "floor_sdk"), {}),
    "hello-ct": (os.path.join(RELEASE, "floor_runtime"), {"HOOKLINE_FLOOR_FLAVOR": "current"}),
    "hello-mt": (os.path.join(RELEASE, "floor_runtime"), {"HOOKLINE_FLOOR_FLAVOR": "multi"}),
    "hello-http": (os.path.join(RELEASE, "hello_http"), {}),
    # The SDK floor with the SDK's own defaults, and with one of Hookline's settings undone.
    "sdk-defaults": (os.path.join(RELEASE, "floor_sdk"), {"HOOKLINE_FLOOR_TUNING": "sdk-defaults"}),
    "sdk-no-env": (os.path.join(RELEASE, "floor_sdk"), {"HOOKLINE_FLOOR_TUNING": "no-env-credentials"}),
    "sdk-ssp-on": (os.path.join(RELEASE, "floor_sdk"), {"HOOKLINE_FLOOR_TUNING": "no-stalled-stream-off"}),
    "sdk-system-roots": (os.path.join(RELEASE, "floor_sdk"), {"HOOKLINE_FLOOR_TUNING": "system-roots"}),
    # The SDK floor opening both connections at once during init, as the receivers do.
    "sdk-warm-up": (os.path.join(RELEASE, "floor_sdk"), {"HOOKLINE_FLOOR_TUNING": "warm-up"}),
    # The receiver without its INFO line per request (what the log line costs).
    "receiver-warn": (os.path.join(RELEASE, "payment-events"), {"AWS_LAMBDA_LOG_LEVEL": "WARN"}),
}
DEFAULT_SUBJECTS = "receiver,sdk-floor,hello-ct,hello-mt,hello-http"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def nodelay(handler):
    # Headers and body go out in separate writes: without this, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every exchange.
    handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def serve(handler, context=None):
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    if context is not None:
        # The handshake runs in the connection's own thread (Stub.setup), not in accept().
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


# --connect-ms: added before each new connection to the stub is served (and before its TLS
# handshake), as the network round trips of a connection set-up to AWS would.
CONNECT_DELAY = 0.0


class Stub(BaseHTTPRequestHandler):
    """Every AWS JSON-protocol call answered with an empty success, on kept-alive connections."""
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        nodelay(self)
        if CONNECT_DELAY:
            time.sleep(CONNECT_DELAY)
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, *a):
        pass

    calls = 0  # every AWS call the stub answered, so a run can say how many an event cost

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Stub.calls += 1
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-RequestId", "stub")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def certificate(workdir):
    """A CA and a certificate for 127.0.0.1 signed by it (openssl), for the TLS stub."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=workdir, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=hookline bench CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(workdir, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(workdir, "server.pem"), os.path.join(workdir, "server.key"))
    return context, os.path.join(workdir, "ca.pem")


def start_moto(env):
    port = free_port()
    moto = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts/emulator.py"),
                             "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            break
        except Exception:
            time.sleep(0.2)
    cli = next(p for p in (os.path.join(RELEASE, "hookline"), os.path.join(RELEASE, "..", "debug", "hookline"))
               if os.path.exists(p))
    up = subprocess.run([cli, "local", "up", "--endpoint", endpoint, "--table", "hookline-bench",
                         "--queue", "hookline-bench"], env=env, capture_output=True, text=True)
    if up.returncode != 0:
        moto.kill()
        sys.exit(f"local up failed: {up.stderr}")
    queue_url = next(l.split()[-1] for l in up.stdout.splitlines() if l.startswith("queue "))
    return moto, endpoint, queue_url


def apigw_event(n, now, tag):
    sample = json.load(open(os.path.join(ROOT, "events/payment-events/invoice.paid.json")))
    sample["id"] = f"evt_bench_{tag}_{n}"
    sample["data"]["object"]["id"] = f"in_bench_{tag}_{n}"
    sample["created"] = now
    body = json.dumps(sample, separators=(",", ":"))
    sig = hmac.new(SECRET.encode(), f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/stripe",
        "rawPath": "/webhooks/stripe",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "stripe-signature": f"t={now},v1={sig}",
                    "host": "bench.local"},
        "requestContext": {
            "accountId": "000000000000", "apiId": "bench", "domainName": "bench.local",
            "domainPrefix": "bench",
            "http": {"method": "POST", "path": "/webhooks/stripe", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": f"r{n}", "routeKey": "POST /webhooks/stripe", "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": now * 1000,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def cpu_secs(pid):
    """CPU time of the process's threads, in ns steps (/proc/<pid>/stat counts 10 ms ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{task}/schedstat").read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that has just ended
    return total / 1e9


def peak_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_once(binary, env, events):
    """One process, `events` invocations. Returns the figures of the run."""
    payloads = [json.dumps(e).encode() for e in events]
    lock, done, spawned = threading.Lock(), threading.Event(), threading.Event()
    st = {"next": 0, "handed": {}, "latency": [], "statuses": {}, "first_next": None,
          "first_answer": None, "init_cpu": None, "cpu_first": None}

    class Api(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real Runtime API

        def setup(self):
            super().setup()
            nodelay(self)

        def log_message(self, *a):
            pass

        def do_GET(self):
            now = time.perf_counter()
            spawned.wait()  # a fast child can ask before Popen has returned its pid
            with lock:
                i = st["next"]
                st["next"] += 1
                if st["first_next"] is None:
                    st["first_next"] = now
                    st["init_cpu"] = cpu_secs(st["pid"])
            if i >= len(payloads):
                done.set()
                time.sleep(3600)
                return
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", f"req-{i}")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 10000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                             "arn:aws:lambda:us-east-1:000000000000:function:bench")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-0-0")
            self.send_header("Content-Length", str(len(payloads[i])))
            self.end_headers()
            self.wfile.write(payloads[i])
            with lock:
                st["handed"][i] = time.perf_counter()

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            now = time.perf_counter()
            i = int(self.path.split("/invocation/")[1].split("/")[0].removeprefix("req-"))
            if "/response" in self.path:
                try:
                    status = json.loads(json.loads(body)["body"])["status"]
                except Exception:
                    status = "unparsed"
            else:
                status = "error"
            with lock:
                if st["first_answer"] is None:
                    st["first_answer"] = now
                    st["cpu_first"] = cpu_secs(proc.pid)
                elif i in st["handed"]:
                    st["latency"].append(now - st["handed"][i])
                st["statuses"][status] = st["statuses"].get(status, 0) + 1
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server, port = serve(Api)
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}")
    start = time.perf_counter()
    calls_before = Stub.calls
    # The receivers write metric lines (EMF) to stdout: not wanted on the benchmark's.
    proc = subprocess.Popen(os.environ.get("BENCH_WRAP", "").split() + [binary], env=env, stdout=subprocess.DEVNULL)
    st["pid"] = proc.pid
    spawned.set()
    deadline = time.monotonic() + 900
    # Stop waiting when the child exits (or hangs) before answering every event.
    while not (finished := done.wait(timeout=0.2)):
        if proc.poll() is not None or time.monotonic() > deadline:
            break
    if finished:
        hwm, cpu_total = peak_kib(proc.pid), cpu_secs(proc.pid)
    if finished and os.environ.get("BENCH_WRAP"):
        proc.send_signal(signal.SIGINT)  # a profiler writes its data and stops its child
    else:
        proc.kill()
    proc.wait()
    server.shutdown()
    if not finished or st["first_answer"] is None:
        sys.exit(f"{binary}: did not answer every event (exit {proc.returncode}, {st['statuses']})")
    warm = max(len(payloads) - 1, 1)
    lat = sorted(st["latency"]) or [0.0]
    return {
        "init_ms": (st["first_next"] - start) * 1e3,
        "init_cpu_ms": st["init_cpu"] * 1e3,
        "first_ms": (st["first_answer"] - start) * 1e3,
        "warm_p50_ms": lat[len(lat) // 2] * 1e3,
        "warm_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
        "cpu_us": (cpu_total - st["cpu_first"]) / warm * 1e6,
        "rss_mib": hwm / 1024,
        "calls": (Stub.calls - calls_before) / len(payloads),
        "statuses": st["statuses"],
    }


FIGURES = [("init_ms", "init ms", 1), ("init_cpu_ms", "init CPU ms", 0), ("first_ms", "first answer ms", 1),
           ("warm_p50_ms", "warm p50 ms", 2), ("warm_p99_ms", "warm p99 ms", 2),
           ("cpu_us", "CPU/warm event us", 0), ("rss_mib", "peak RSS MiB", 1),
           ("calls", "AWS calls/event (stub)", 2)]


def summary(values, digits):
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=2000, help="events per run (stub and tls)")
    ap.add_argument("--moto-events", type=int, default=200, help="events per run against moto")
    ap.add_argument("--runs", type=int, default=3, help="runs of each subject, interleaved")
    ap.add_argument("--aws", default="stub,tls", help="comma-separated: stub, tls, moto")
    ap.add_argument("--subjects", default=DEFAULT_SUBJECTS,
                    help=f"comma-separated, of: {', '.join(SUBJECTS)}")
    ap.add_argument("--connect-ms", type=float, default=0.0,
                    help="delay before the stub serves each new connection (network set-up)")
    ap.add_argument("--before", metavar="BINARY",
                    help="an earlier build of payment-events, run as subject receiver-before")
    args = ap.parse_args()
    global CONNECT_DELAY
    CONNECT_DELAY = args.connect_ms / 1000
    subjects = args.subjects.split(",")
    if args.before:
        SUBJECTS["receiver-before"] = (os.path.abspath(args.before), {})
        subjects.insert(1, "receiver-before")
    for name in subjects:
        if not os.path.exists(SUBJECTS[name][0]):
            sys.exit(f"{SUBJECTS[name][0]} missing: run `make bench-lambda` (it builds them)")

    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SSL_CERT"))}
    base.update(AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                TABLE_NAME="hookline-bench", WEBHOOK_SECRETS=SECRET,
                # As template.yaml deploys them: a JSON log line and a metric line per request.
                AWS_LAMBDA_LOG_LEVEL="INFO", AWS_LAMBDA_LOG_FORMAT="JSON",
                AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
                AWS_LAMBDA_FUNCTION_VERSION="1")
    workdir = tempfile.mkdtemp(prefix="hookline-bench-")
    results = {}
    for aws in args.aws.split(","):
        env, stop = dict(base), None
        if aws in ("stub", "tls"):
            context, ca = certificate(workdir) if aws == "tls" else (None, None)
            server, port = serve(Stub, context)
            scheme = "https" if aws == "tls" else "http"
            env["AWS_ENDPOINT_URL"] = f"{scheme}://127.0.0.1:{port}"
            env["FOLLOWUP_QUEUE_URL"] = f"{env['AWS_ENDPOINT_URL']}/000000000000/hookline-bench"
            if ca:
                env["SSL_CERT_FILE"] = ca
            stop = server.shutdown
            n = args.events
        elif aws == "moto":
            moto, env["AWS_ENDPOINT_URL"], env["FOLLOWUP_QUEUE_URL"] = start_moto(env)
            stop = moto.kill
            n = args.moto_events
        else:
            sys.exit(f"unknown --aws {aws}")
        now = int(time.time())
        try:  # the stub or the emulator stops even when a run fails
            for r in range(args.runs):
                for name in subjects:
                    binary, extra = SUBJECTS[name]
                    events = [apigw_event(i, now, f"{aws}{r}{name}") for i in range(n)]
                    fig = run_once(binary, dict(env, **extra), events)
                    results.setdefault((aws, name), []).append(fig)
                    if set(fig["statuses"]) - {"accepted", "hello"}:
                        # A run whose calls failed is cheaper than real work: never a figure.
                        sys.exit(f"{name} answered {fig['statuses']} against {aws}: not a valid run")
                    print(f"[{aws} run {r + 1}/{args.runs}] {name}: first answer {fig['first_ms']:.1f} ms, "
                          f"{fig['cpu_us']:.0f} us CPU/event, answers {fig['statuses']}", file=sys.stderr)
        finally:
            stop()

    print(f"\n{args.runs} runs per subject, {args.events} events per run ({args.moto_events} against moto); "
          f"median (min-max)\n")
    header = ["aws", "subject"] + [label for _, label, _ in FIGURES]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for (aws, name), figs in results.items():
        cells = [summary([f[key] for f in figs], d) for key, _, d in FIGURES]
        print(f"| {aws} | {name} | " + " | ".join(cells) + " |")
    print("\nRatios of the receiver's medians to each floor's (same AWS, same sitting):\n")
    receivers = [s for s in subjects if s.startswith("receiver")]
    for aws in args.aws.split(","):
        for rx_name in receivers:
            rx = results.get((aws, rx_name))
            for floor in [s for s in subjects if s not in receivers]:
                fl = results.get((aws, floor))
                if not rx or not fl:
                    continue
                med = lambda figs, key: statistics.median(f[key] for f in figs)
                ratio = lambda key: med(rx, key) / max(med(fl, key), 1e-9)
                print(f"- {aws}, {rx_name} / {floor}: CPU per warm event {ratio('cpu_us'):.2f}x, "
                      f"first answer {ratio('first_ms'):.2f}x, warm p99 {ratio('warm_p99_ms'):.2f}x")
    if ("stub", "receiver") in results and ("tls", "receiver") in results:
        plain = statistics.median(f["first_ms"] for f in results[("stub", "receiver")])
        tls = statistics.median(f["first_ms"] for f in results[("tls", "receiver")])
        print(f"- receiver's first answer with TLS {tls:.1f} ms vs plain {plain:.1f} ms: +{tls - plain:.1f} ms")


if __name__ == "__main__":
    main()

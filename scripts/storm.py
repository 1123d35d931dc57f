#!/usr/bin/env python3
"""A webhook storm against the local stack, as providers deliver and as targets fail.

    python scripts/storm.py                      # 2,000 events x 3, 32 senders, sink faults
    python scripts/storm.py --short              # a few dozen events, a few seconds of faults (CI)
    python scripts/storm.py --events 100 --senders 16 --fail-rate 0 --down-for 0

It starts `scripts/dev.sh` (emulator, table and queues, sink, pump with the reconciler, `cargo
lambda watch`) on free ports with a state directory of its own under .local/ (kept when an
invariant breaks, or with --keep), waits for `dev: ready`, and then:

1. generates N distinct events with whole lifecycles on several entities each: Stripe customers
   (a subscription created, updated, maybe deleted; invoices failing then paid; a payment intent
   failing then succeeding; a checkout session) and Standard Webhooks users (created, updated,
   maybe deleted), with ids and timestamps that order each lifecycle;
2. delivers every event `--copies` times (3) in one shuffled order from `--senders` concurrent
   senders, each signing every attempt afresh with the local test secret and retrying 5xx and
   connection errors with a jittered exponential backoff, a bounded number of times, as
   providers do;
3. while the sink (the target of every follow-up) fails a share of its calls with 503 and goes
   down once for a while (`hookline sink --fail-rate/--down-after/--down-for`);
4. waits (bounded) until no follow-up is pending; a follow-up the worker rightly gave up on after
   FOLLOWUP_MAX_ATTEMPTS injected 503s is redriven as an operator would (`hookline redrive`),
   and waited for again;
5. reads the table (boto3, from the venv) and the sink's record, and reports the figures.

The rules come from the project, never from this script, so they cannot drift (docs/RELIABILITY.md,
"Where the rules come from"): every attempt is signed by a `hookline sign --jsonl` co-process
(the function's own scheme, the code of `hookline send`); what each event does (entity, ordering
version, tombstone, attributes, sync, actions and their guards) and which event each entity must
end at come from `hookline describe --jsonl --finals` (the receivers' own `describe` mappings, and
the store's ordering rule `store::ordering::supersedes`); the follow-up behind each
Idempotency-Key comes from the sink's record, parsed by the store's `lifecycle::parse_key`. This
script generates the inputs (bodies, ids, timestamps that order each lifecycle) and compares.

Exit status 1 when an invariant is broken: a delivery never answered 2xx, an event applied
twice or answered `duplicate` with no delivery accepting it, a follow-up not DONE (a `welcome`
SKIPPED because its user was deleted first, or a failure alert SKIPPED because its invoice or
payment intent succeeded meanwhile, is by design: the action's own guard holds), a key answered
2xx twice or none the sink could parse, a POST that no injected fault and no newer state explains,
an entity whose final state is not the one the ordering rule keeps (a `user.deleted` always wins),
or a synced entity whose last sync call at the sink is not its final state's. Nothing but ids and figures is printed: no body, no
signature. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import collections
import copy
import dataclasses
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = "hookline-local"
QUEUE = "hookline-followups"
PENDING_SHARDS = 8
# Least time between two attempts of one follow-up: the backoff's 1 s floor, less what the
# worker spends between its POST and setting the message's visibility.
BACKOFF_FLOOR_MS = 900
HOST = "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# Events


@dataclasses.dataclass
class Event:
    """One distinct event, and what the receiver's own mapping makes of it (`hookline describe`,
    filled in by `Project.describe`: nothing below `body` is decided here)."""

    function: str  # payment-events | user-events
    event_id: str  # Stripe's evt_..., or the Standard Webhooks message id
    type: str
    body: bytes
    source: str = ""  # stripe | users
    kind: str = ""  # the entity it changes
    entity: str = ""
    version: int = 0  # the ordering version the mapping gives it
    tombstone: bool = False  # final whatever its version (user.deleted)
    actions: list[dict] = dataclasses.field(default_factory=list)  # {kind, guard}
    attrs: dict = dataclasses.field(default_factory=dict)  # the entity's state after it
    sync: dict | None = None  # {name, action, baseline}: the state its entity's sync mirrors

    @property
    def action_kinds(self) -> list[str]:
        return [a["kind"] for a in self.actions]


def load(path: str) -> dict:
    return json.loads((ROOT / "events" / path).read_text())


def dumps(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Generator:
    """Lifecycles with ids unique to this run and timestamps that order each one."""

    def __init__(self, rng: random.Random, run: str):
        self.rng, self.run = rng, run
        self.samples = {name: load(f"payment-events/{name}.json") for name in (
            "customer.subscription.created", "customer.subscription.updated",
            "customer.subscription.deleted", "invoice.paid", "invoice.payment_failed",
            "payment_intent.succeeded", "payment_intent.payment_failed",
            "checkout.session.completed")}
        for name in ("user.created", "user.updated", "user.deleted"):
            self.samples[name] = load(f"user-events/{name}.json")
        # Provider times in the recent past, one lifecycle per hour apart.
        self.base = int(time.time()) - 30 * 86400

    def stripe(self, k: int) -> list[Event]:
        rng, tag = self.rng, f"{self.run}{k:05d}"
        t0 = self.base + k * 3600
        cus, sub = f"cus_storm{tag}", f"sub_storm{tag}"
        events: list[Event] = []

        def stripe_event(name: str, created: int, obj: dict) -> None:
            body = copy.deepcopy(self.samples[name])
            body["id"] = f"evt_storm{tag}x{len(events):02d}"
            body["created"] = created
            body["data"]["object"].update(obj)
            events.append(Event("payment-events", body["id"], name, dumps(body)))

        # The subscription: created, updated one to three times, deleted in a third of them.
        first = rng.choice(["incomplete", "trialing", "active"])
        path = [("created", first, t0)]
        t = t0
        if first == "incomplete":
            path.append(("updated", "active", t0))  # the same second: ordered by lifecycle
        for _ in range(rng.randint(1, 3)):
            t += rng.randint(60, 86400)
            path.append(("updated", rng.choice(["active", "past_due", "active", "unpaid",
                                                "trialing"]), t))
        if rng.random() < 1 / 3:
            path.append(("deleted", "canceled", t + rng.randint(60, 86400)))
        for stage, status, created in path:
            price = self.rng.choice(["price_1PhookLineBasic", "price_1PhookLinePro00"])
            item = copy.deepcopy(self.samples[f"customer.subscription.{stage}"]
                                 ["data"]["object"]["items"])
            item["data"][0]["price"]["id"] = price
            item["data"][0]["subscription"] = sub
            ended = created if stage == "deleted" else None
            stripe_event(f"customer.subscription.{stage}", created,
                         {"id": sub, "customer": cus, "status": status, "items": item,
                          "canceled_at": ended, "ended_at": ended})

        # The checkout session that started it: it grants nothing itself, the subscription's
        # access sync does (docs/FOLLOWUPS.md, "One entity decides").
        stripe_event("checkout.session.completed", t0 + 1,
                     {"id": f"cs_storm{tag}", "customer": cus, "subscription": sub,
                      "payment_status": "paid", "mode": "subscription"})

        # Invoices: the first one's payment fails, then succeeds; a renewal is paid or fails.
        def invoice(n: int, paid: bool, created: int, attempt: int) -> None:
            inv = f"in_storm{tag}i{n}"
            name = "invoice.paid" if paid else "invoice.payment_failed"
            stripe_event(name, created,
                         {"id": inv, "customer": cus, "status": "paid" if paid else "open",
                          "attempt_count": attempt, "number": f"STORM-{tag}-{n}"})

        if rng.random() < 0.5:
            invoice(1, False, t0 + 2, 1)
            invoice(1, True, t0 + 3602, 2)
        else:
            invoice(1, True, t0 + 2, 1)
        invoice(2, rng.random() < 0.7, t0 + 30 * 86400, 1)

        # A payment intent that fails, then succeeds.
        pi = f"pi_storm{tag}"
        for n, (name, status) in enumerate([("payment_intent.payment_failed",
                                             "requires_payment_method"),
                                            ("payment_intent.succeeded", "succeeded")]):
            stripe_event(name, t0 + 2 + n * 600, {"id": pi, "customer": cus, "status": status})
        return events

    def user(self, k: int) -> list[Event]:
        rng, tag = self.rng, f"{self.run}{k:05d}"
        uid = f"user_storm{tag}"
        events: list[Event] = []
        t = (self.base + k * 3600) * 1000 + rng.randint(0, 999)

        def user_event(name: str, data: dict) -> None:
            body = copy.deepcopy(self.samples[name])
            body["data"].update(data)
            body["timestamp"] = t
            events.append(Event("user-events", f"msg_storm{tag}x{len(events):02d}", name,
                                dumps(body)))

        names = ["Lovelace", "King", "Byron", "Somerville", "Babbage", "Hopper"]
        email = f"{uid}@example.com"
        created = {"id": uid, "created_at": t, "updated_at": t, "last_name": names[0],
                   "email_addresses": [{"id": f"idn_{tag}", "email_address": email}],
                   "primary_email_address_id": f"idn_{tag}"}
        user_event("user.created", created)
        for n in range(rng.randint(1, 3)):
            t += rng.randint(1000, 86_400_000)
            name = names[(n + 1) % len(names)]
            user_event("user.updated", {**created, "updated_at": t, "last_name": name})
        if rng.random() < 0.4:
            t += rng.randint(1000, 86_400_000)
            user_event("user.deleted", {"id": uid, "deleted": True})
        return events


def generate(n: int, rng: random.Random, run: str) -> list[Event]:
    """`n` events: Stripe customers' and users' lifecycles in turn (the last one cut short)."""
    gen, events, k = Generator(rng, run), [], 0
    while len(events) < n:
        events += gen.stripe(k) if k % 2 == 0 else gen.user(k)
        k += 1
    return events[:n]


# ---------------------------------------------------------------------------------------------
# The project's own rules: `hookline sign` and `hookline describe`


def hookline_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "hookline"


def build_hookline() -> Path:
    """`cargo build -p hookline-cli` (a no-op when it is fresh; `scripts/dev.sh` runs it too)."""
    subprocess.run(["cargo", "build", "--quiet", "-p", "hookline-cli"], cwd=ROOT, check=True)
    return hookline_binary()


def tool_env() -> dict[str, str]:
    """The tools sign with the local test secret, as the stack's functions verify."""
    env = dict(os.environ)
    env.pop("HOOKLINE_SECRET", None)
    return env


def request_line(event: Event) -> str:
    return json.dumps({"function": event.function, "id": event.event_id,
                       "body": event.body.decode()}) + "\n"


class Signer:
    """`hookline sign --jsonl`: one co-process, shared by every sender, signing each attempt
    afresh with the function's own scheme (the code `hookline send` uses)."""

    def __init__(self, binary: Path):
        self.proc = subprocess.Popen([str(binary), "sign", "--jsonl"], cwd=ROOT, env=tool_env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        self.lock = threading.Lock()

    def sign(self, event: Event) -> dict[str, str]:
        """Fresh headers (content type and signature), as the provider signs each attempt."""
        with self.lock:
            self.proc.stdin.write(request_line(event))
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"hookline sign exited ({self.proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"hookline sign: {answer['error']}")
        return answer["headers"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def describe(binary: Path, events: list[Event]) -> dict[tuple[str, str], Event]:
    """Fills in each event as its receiver's own mapping describes it (`hookline describe
    --jsonl`), and returns per entity the event its final state must come from, by the store's
    own ordering rule (`--finals`). Raises when the mapping refuses an event or names it
    otherwise than the generator did."""
    out = subprocess.run([str(binary), "describe", "--jsonl", "--finals"], cwd=ROOT,
                         env=tool_env(), input="".join(request_line(e) for e in events),
                         capture_output=True, text=True, check=True, timeout=300)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    by_id = {}
    for e, line in zip(events, lines):
        if "event" not in line:
            raise RuntimeError(f"hookline describe refused {e.event_id}: {line.get('error')}")
        d = line["event"]
        if d["event_id"] != e.event_id:
            raise RuntimeError(f"hookline describe read {e.event_id} as {d['event_id']}")
        change = d.get("change") or {}
        e.source, e.actions = d["source"], d["actions"]
        e.kind, e.entity = change.get("entity_kind", ""), change.get("entity_id", "")
        e.version, e.tombstone = change.get("version", 0), change.get("tombstone", False)
        e.attrs, e.sync = change.get("attrs") or {}, change.get("sync")
        by_id[e.event_id] = e
    if len(lines) < len(events):
        raise RuntimeError(f"hookline describe answered {len(lines)} of {len(events)} events")
    finals = {}
    for line in lines[len(events):]:
        f = line["final"]
        finals[(f["entity_kind"], f["entity_id"])] = by_id[f["event_id"]]
    return finals


# ---------------------------------------------------------------------------------------------
# Senders


@dataclasses.dataclass
class Outcome:
    """One delivery's end: the answer it got, and the attempts on the way."""

    event: int  # index into the events
    answer: str  # accepted | duplicate | stale | ... | http-<status> | error
    attempts: list[str]  # each attempt's status ("200", "503", "timeout", ...)
    lost: bool  # an attempt's answer was lost (timeout, connection error): it may have landed


class Senders:
    """`count` threads delivering a shuffled list, each retrying as a provider does."""

    def __init__(self, port: int, events: list[Event], args: argparse.Namespace,
                 signer: Signer):
        self.port, self.events, self.args, self.signer = port, events, args, signer
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()

    def run(self, order: list[int]) -> None:
        work = iter(order)
        threads = [threading.Thread(target=self.sender, args=(work, i), daemon=True)
                   for i in range(self.args.senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def sender(self, work, i: int) -> None:
        rng = random.Random(f"{self.args.seed}/{i}")
        conn = None
        while True:
            with self.lock:
                index = next(work, None)
            if index is None:
                break
            event = self.events[index]
            attempts, lost, answer = [], False, "error"
            for attempt in range(self.args.sender_tries):
                if attempt:
                    # Jittered exponential backoff, as providers retry (here in seconds).
                    time.sleep(rng.uniform(0.5, 1.0) * min(8.0, 0.5 * 2 ** (attempt - 1)))
                try:
                    headers = self.signer.sign(event)
                except (OSError, RuntimeError, ValueError):
                    answer = "unsigned"  # the signer failed: a broken run, reported as such
                    break
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
                    conn.request("POST", f"/lambda-url/{event.function}/", event.body, headers)
                    resp = conn.getresponse()
                    raw = resp.read()
                    status = resp.status
                except (OSError, http.client.HTTPException) as err:
                    if conn is not None:
                        conn.close()
                    conn = None
                    attempts.append("timeout" if isinstance(err, TimeoutError) else "error")
                    lost = True
                    continue
                attempts.append(str(status))
                if 200 <= status < 300:
                    try:
                        answer = json.loads(raw).get("status", "?")
                    except ValueError:
                        answer = "unreadable"
                    break
                answer = f"http-{status}"
                if status < 500:
                    break  # a 4xx is final: providers do not retry it forever either
            with self.lock:
                self.outcomes.append(Outcome(index, answer, attempts, lost))
        if conn is not None:
            conn.close()


# ---------------------------------------------------------------------------------------------
# The stack


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Stack:
    """`scripts/dev.sh` in a process group of its own, on free ports, in its own state dir."""

    def __init__(self, args: argparse.Namespace):
        (ROOT / ".local").mkdir(exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="storm-", dir=ROOT / ".local"))
        self.moto, self.watch, self.sink = free_port(), free_port(), free_port()
        self.env = {**os.environ, "HOOKLINE_MOTO_PORT": str(self.moto),
                    "HOOKLINE_WATCH_PORT": str(self.watch), "HOOKLINE_SINK_PORT": str(self.sink),
                    "HOOKLINE_STATE_DIR": str(self.dir), "HOOKLINE_SINK_FAIL_FIRST": "0",
                    "HOOKLINE_SINK_FAIL_RATE": str(args.fail_rate),
                    "HOOKLINE_SINK_SEED": str(args.seed)}
        self.env.pop("AWS_ENDPOINT_URL", None)
        if args.down_for > 0:
            self.env["HOOKLINE_SINK_DOWN_AFTER"] = str(args.down_after)
            self.env["HOOKLINE_SINK_DOWN_FOR"] = f"{args.down_for}s"
        self.log = self.dir / "dev.log"
        self.proc: subprocess.Popen | None = None
        self.endpoint = f"http://{HOST}:{self.moto}"

    def start(self, timeout: float) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["bash", "scripts/dev.sh"], cwd=ROOT, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while b"dev: ready" not in self.log.read_bytes():
            if self.proc.poll() is not None:
                raise RuntimeError(f"scripts/dev.sh exited ({self.proc.returncode}) before it "
                                   f"was ready; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready within {timeout:.0f}s; see {self.log}")
            time.sleep(0.25)

    def stop(self) -> None:
        """TERM to dev.sh's group (its EXIT trap stops what it started), then `dev.sh down`."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Whatever the trap could not stop (pid files in our state dir, checked by command line).
        subprocess.run(["bash", "scripts/dev.sh", "down"], cwd=ROOT, env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        self.proc = None

    def hookline(self, *argv: str) -> subprocess.CompletedProcess:
        env = {**self.env, "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        return subprocess.run([str(hookline_binary()), *argv], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=False, timeout=300)


class Table:
    """Reads the table and the queue through boto3 (moto brings it into the venv)."""

    def __init__(self, endpoint: str):
        try:
            import boto3
            from boto3.dynamodb.types import TypeDeserializer
        except ImportError:
            sys.exit("storm: boto3 is missing: run with the venv's python (.venv/bin/python, "
                     "after bash scripts/bootstrap.sh)")
        kw = {"endpoint_url": endpoint, "region_name": "us-east-1",
              "aws_access_key_id": "test", "aws_secret_access_key": "test"}
        self.ddb, self.sqs = boto3.client("dynamodb", **kw), boto3.client("sqs", **kw)
        self.des = TypeDeserializer()

    def pending(self) -> int:
        """Items with a follow-up that is not final (the reconciler's pending index)."""
        total = 0
        for shard in range(PENDING_SHARDS):
            pages = self.ddb.get_paginator("query").paginate(
                TableName=TABLE, IndexName="pending-outbox", Select="COUNT",
                KeyConditionExpression="pending_pk = :p",
                ExpressionAttributeValues={":p": {"S": f"PENDING#{shard}"}})
            total += sum(page["Count"] for page in pages)
        return total

    def queued(self) -> int:
        url = self.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(v) for v in attrs.values())

    def items(self) -> tuple[dict, dict]:
        """(events by (source, id), entities by (kind, id)), bodies left out."""
        events, entities = {}, {}
        pages = self.ddb.get_paginator("scan").paginate(
            TableName=TABLE, FilterExpression="sk <> :body",
            ExpressionAttributeValues={":body": {"S": "BODY"}})
        for page in pages:
            for raw in page["Items"]:
                item = {k: self.des.deserialize(v) for k, v in raw.items()}
                if item["sk"] == "EVENT":
                    events[(item["source"], item["event_id"])] = item
                elif item["sk"] == "STATE":
                    entities[(item["_kind"], item["_id"])] = item
        return events, entities


# ---------------------------------------------------------------------------------------------
# Checks


def ident(followup: dict) -> tuple:
    """A follow-up's identity from the sink record's `followup` (the key, parsed by the store's
    own `lifecycle::parse_key`)."""
    if followup["kind"] == "sync":
        return ("sync", followup["entity_kind"], followup["entity_id"], followup["action"])
    return ("action", followup["source"], followup["event_id"], followup["action"])


def guard_holds(guard: dict | None, entities: dict) -> bool:
    """True when an action's guard (as the mapping declared it) says skip, given the entities'
    final states: a SKIPPED action is then by design."""
    if not guard:
        return False
    if guard["guard"] == "unless_deleted":
        return bool((entities.get((guard["kind"], guard["id"])) or {}).get("_deleted"))
    entity = entities.get((guard["entity"]["kind"], guard["entity"]["id"])) or {}
    return (entity.get("attrs") or {}).get(guard["attr"]) == guard["equals"]


def attr_equal(stored, described) -> bool:
    """A stored attribute (boto3: numbers as Decimal, maps and lists as their JSON text) against
    the mapping's value."""
    if isinstance(described, (dict, list)):
        return stored == json.dumps(described, separators=(",", ":"), sort_keys=True)
    return stored == described


class Report:
    def __init__(self):
        self.lines: list[str] = []
        self.broken: list[str] = []
        self.figures: dict = {}

    def say(self, text: str) -> None:
        self.lines.append(text)
        print(text, flush=True)

    def fail(self, what: str, items: list[str]) -> None:
        if items:
            shown = ", ".join(items[:10]) + (f", ... ({len(items)} in all)" if len(items) > 10
                                             else "")
            self.broken.append(f"{what}: {shown}")


def check(events: list[Event], final: dict[tuple[str, str], Event], outcomes: list[Outcome],
          stored: dict, entities: dict, sink: list[dict], report: Report) -> None:
    """Every invariant, on the events as described (`describe`), the entities' expected final
    events (`final`, by the store's own rule), the senders' outcomes, the table and the sink's
    record."""
    by_event: dict[int, list[Outcome]] = collections.defaultdict(list)
    for o in outcomes:
        by_event[o.event].append(o)

    # Answers.
    answers = collections.Counter(o.answer for o in outcomes)
    attempts = collections.Counter(a for o in outcomes for a in o.attempts)
    retries = sum(len(o.attempts) - 1 for o in outcomes)
    f = report.figures
    f["answers"] = dict(answers)
    f["attempt_statuses"] = dict(attempts)
    f["sender_retries"] = retries
    report.say("answers: " + ", ".join(f"{k} {v}" for k, v in sorted(answers.items())))
    report.say(f"sender attempts: {sum(attempts.values())} "
               f"({', '.join(f'{k} {v}' for k, v in sorted(attempts.items()))}); "
               f"retries {retries}")
    report.fail("deliveries never answered 2xx", [
        f"{events[o.event].event_id} ({'/'.join(o.attempts)})" for o in outcomes
        if o.answer.startswith("http-") or o.answer in ("error", "unreadable", "unsigned")])
    report.fail("deliveries answered neither accepted, stale nor duplicate", [
        f"{events[o.event].event_id}: {o.answer}" for o in outcomes
        if not o.answer.startswith("http-")
        and o.answer not in ("accepted", "stale", "duplicate", "error", "unreadable",
                             "unsigned")])
    applied_twice, unexplained_duplicates, wrong_status = [], [], []
    for i, e in enumerate(events):
        got = by_event.get(i, [])
        firsts = [o for o in got if o.answer in ("accepted", "stale")]
        if len(firsts) > 1:
            applied_twice.append(e.event_id)
        elif not firsts and not any(o.lost for o in got):
            unexplained_duplicates.append(e.event_id)
        record = stored.get((e.source, e.event_id))
        if record is None:
            wrong_status.append(f"{e.event_id} not recorded")
        elif firsts and record["status"] != firsts[0].answer:
            wrong_status.append(f"{e.event_id} answered {firsts[0].answer}, "
                                f"recorded {record['status']}")
    report.fail("events answered accepted/stale more than once", applied_twice)
    report.fail("events no delivery accepted (all duplicate, no answer lost)",
                unexplained_duplicates)
    report.fail("event records missing or not as answered", wrong_status)
    statuses = collections.Counter(r["status"] for r in stored.values())
    f["recorded"] = dict(statuses)
    report.say("recorded: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))

    # Final state of every entity.
    wrong = []
    for (kind, entity), e in final.items():
        item = entities.get((kind, entity))
        if item is None:
            wrong.append(f"{kind}/{entity} missing")
            continue
        if e.tombstone:
            if not item.get("_deleted"):
                wrong.append(f"{kind}/{entity} not deleted")
            continue
        attrs = item.get("attrs") or {}
        mismatch = sorted(k for k, v in e.attrs.items() if not attr_equal(attrs.get(k), v))
        if item.get("_deleted") or item.get("_last_event_id") != e.event_id or mismatch:
            wrong.append(f"{kind}/{entity} at {item.get('_last_event_id')}, "
                         f"expected {e.event_id} {mismatch or ''}".rstrip())  # names only
    f["entities"] = len(final)
    f["entities_not_newest"] = len(wrong)
    report.say(f"entities: {len(final)}, not at their newest state: {len(wrong)}")
    report.fail("entities not at their newest state", wrong)

    # Follow-ups: expected, and how each ended. A SKIPPED action is by design when its guard (as
    # the mapping declared it) holds on the entity's final state: no welcome to a user deleted
    # first, no failure alert about an invoice or payment intent that succeeded meanwhile.
    finals = collections.Counter()
    not_done = []
    expected = 0
    for e in events:
        record = stored.get((e.source, e.event_id)) or {}
        outbox = record.get("outbox") or {}
        for action in e.actions:
            expected += 1
            entry = outbox.get(action["kind"])
            status = entry["status"] if entry else "MISSING"
            finals[status] += 1
            if status == "DONE" or (status == "SKIPPED"
                                    and guard_holds(action.get("guard"), entities)):
                continue
            not_done.append(f"{e.source}:{e.event_id}:{action['kind']} {status}")
        extra = set(outbox) - set(e.action_kinds)
        not_done += [f"{e.source}:{e.event_id}:{a} unexpected" for a in sorted(extra)]
    # Every entity a change gave a sync: its sync converges (DONE).
    synced = sorted({(e.kind, e.entity) for e in events if e.sync})
    for kind, entity in synced:
        expected += 1
        status = (entities.get((kind, entity)) or {}).get("sync_status", "MISSING")
        finals[status] += 1
        if status != "DONE":
            not_done.append(f"{kind}/{entity}:sync {status}")
    f["followups_expected"] = expected
    f["followups_final"] = dict(finals)
    report.say(f"follow-ups: expected {expected} ({expected - len(synced)} event actions, "
               f"{len(synced)} entity syncs); "
               + ", ".join(f"{k} {v}" for k, v in sorted(finals.items()))
               + (" (SKIPPED: actions whose guard held: a user deleted, a payment made)"
                  if finals.get("SKIPPED") else ""))
    report.fail("follow-ups not DONE", not_done)

    # POSTs at the sink, per key and per follow-up.
    per_key: dict[str, list[dict]] = collections.defaultdict(list)
    for r in sink:
        per_key[r.get("idempotency_key") or "-"].append(r)
    per_followup: dict[tuple, list[dict]] = collections.defaultdict(list)
    bad_keys, twice, unexplained = [], [], []
    for key, rs in per_key.items():
        if not rs[0].get("followup"):  # the sink parsed no follow-up out of it
            bad_keys.append(key)
            continue
        per_followup[ident(rs[0]["followup"])] += rs
        ok = [r for r in rs if 200 <= r["status"] < 300]
        if len(ok) > 1:
            twice.append(f"{key} x{len(ok)}")
        odd = [r for r in rs if not 200 <= r["status"] < 300 and not r.get("fault")]
        if odd:
            unexplained.append(f"{key} answered {[r['status'] for r in odd]} with no fault")
    report.fail("POSTs without a valid Idempotency-Key", bad_keys)
    report.fail("keys answered 2xx more than once", twice)
    report.fail("non-2xx answers no injected fault explains", unexplained)

    faults = collections.Counter(r.get("fault") or "none" for r in sink)
    posts = [len(rs) for rs in per_followup.values()]
    oks = [sum(200 <= r["status"] < 300 for r in rs) for rs in per_key.values()]
    more_than_one = [rs for rs in per_followup.values() if len(rs) > 1]
    explained = collections.Counter()
    for rs in more_than_one:
        injected = sum(1 for r in rs if r.get("fault"))
        ok = {r["idempotency_key"]: r["followup"] for r in rs if 200 <= r["status"] < 300}
        # A sync that succeeds once per state it mirrors: each newer state is a new POST.
        explained["injected 503"] += injected
        explained["newer state of the entity (sync)"] += max(0, len(ok) - 1)
        explained["operator redrive (new generation)"] += sum(
            1 for followup in ok.values() if followup["generation"] > 0)
    f.update({"sink_posts": len(sink), "sink_faults": dict(faults),
              "keys": len(per_key), "followups_posted": len(per_followup),
              "posts_per_followup_max": max(posts, default=0),
              "followups_posted_more_than_once": len(more_than_one),
              "successful_posts_per_key_max": max(oks, default=0),
              "extra_posts_explained_by": dict(explained)})
    report.say(f"sink: {len(sink)} POSTs for {len(per_key)} keys of {len(per_followup)} follow-ups"
               f" ({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))})")
    report.say(f"POSTs per follow-up: max {max(posts, default=0)}; more than one: "
               f"{len(more_than_one)} ({', '.join(f'{k}: {v}' for k, v in explained.items())}); "
               f"2xx per key: max {max(oks, default=0)}")

    # Event actions DONE: exactly one 2xx POST; syncs: the last call is the final state's.
    lost, wrong_sync = [], []
    for e in events:
        record = stored.get((e.source, e.event_id)) or {}
        for action in e.action_kinds:
            entry = (record.get("outbox") or {}).get(action) or {}
            rs = per_followup.get(("action", e.source, e.event_id, action), [])
            n_ok = sum(200 <= r["status"] < 300 for r in rs)
            if entry.get("status") == "DONE" and n_ok == 0:
                lost.append(f"{e.source}:{e.event_id}:{action} DONE with no 2xx POST")
            if entry.get("status") == "DONE" and n_ok > 1:
                lost.append(f"{e.source}:{e.event_id}:{action} {n_ok} 2xx POSTs")
    for kind, entity in synced:
        # The state the entity's newest event maps it to: sent last, or, for the baseline (the
        # state a target assumes of an entity it never heard of), maybe never sent at all.
        want = final[(kind, entity)].sync
        if want is None:
            continue
        calls = [r for r in sink if 200 <= r["status"] < 300 and (r.get("followup") or {})
                 and ident(r["followup"])[:3] == ("sync", kind, entity)]
        last = max(calls, key=lambda r: r["n"])["path"] if calls else None
        target = f"/{want['action']}"
        if last != target and not (want["baseline"] and last is None):
            wrong_sync.append(f"{kind}/{entity} ends at {want['action']}, last call {last}")
    # The worker's backoff: at least BACKOFF_FLOOR_MS between two attempts of one follow-up.
    early = []
    for key, rs in per_key.items():
        rs = sorted(rs, key=lambda r: r["n"])
        early += [key for a, b in zip(rs, rs[1:])
                  if not 200 <= a["status"] < 300 and b["at_ms"] - a["at_ms"] < BACKOFF_FLOOR_MS]
    f["retries_sooner_than_backoff"] = len(early)
    f["followups_retried_sooner_than_backoff"] = len(set(early))
    # A backoff holds every copy of a follow-up's message (it keeps the follow-up's lease_until):
    # a retry sooner than the floor is a broken invariant.
    report.fail("retries sooner than the backoff", sorted(set(early)))
    report.fail("event actions without exactly one successful POST", lost)
    report.fail("entities whose last sync call is not their final state's", wrong_sync)
    f["access_mismatches"] = len(wrong_sync)


# ---------------------------------------------------------------------------------------------
# The run


def wait_settled(table: Table, deadline: float, report: Report) -> bool:
    """Until no follow-up is pending (then the queue empty, bounded); False on the deadline."""
    while table.pending():
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    drain = min(deadline, time.monotonic() + 90)
    while table.queued():
        if time.monotonic() > drain:
            report.say("storm: note: the queue still holds messages of finished follow-ups")
            break
        time.sleep(1)
    return True


def read_sink(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def exhausted(stored: dict, entities: dict, sink: list[dict]) -> tuple[list, list, list]:
    """FAILED follow-ups whose every POST since their last 2xx an injected fault answered (the
    worker gave up on a failing target); FAILED ones nothing explains; and, for the first kind,
    the seconds from their first failing attempt to their last."""
    posts: dict[tuple, list[dict]] = collections.defaultdict(list)
    for r in sorted(sink, key=lambda r: r["n"]):
        if r.get("followup"):
            posts[ident(r["followup"])].append(r)

    spans = []

    def faulted(ident: tuple) -> bool:
        tail = []
        for r in posts.get(ident, []):
            tail = [] if 200 <= r["status"] < 300 else tail + [r]
        if tail and all(r.get("fault") for r in tail):
            spans.append((tail[-1]["at_ms"] - tail[0]["at_ms"]) / 1000)
            return True
        return False

    explained, other = [], []
    for (source, event_id), record in stored.items():
        for action, entry in (record.get("outbox") or {}).items():
            if entry["status"] == "FAILED":
                ok = faulted(("action", source, event_id, action))
                (explained if ok else other).append((source, event_id, action))
    for (kind, entity), item in entities.items():
        if item.get("sync_status") == "FAILED":
            ok = faulted(("sync", kind, entity, item.get("sync_name", "access")))
            (explained if ok else other).append((kind, entity, "sync"))
    return explained, other, spans


def options(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=2000, help="distinct events (default 2000)")
    p.add_argument("--copies", type=int, default=3, help="deliveries of each event (default 3)")
    p.add_argument("--senders", type=int, default=32, help="concurrent senders (default 32)")
    p.add_argument("--sender-tries", type=int, default=8,
                   help="attempts per delivery, retrying 5xx and connection errors (default 8)")
    p.add_argument("--fail-rate", type=float, default=0.3,
                   help="share of the sink's answers that are 503 (default 0.3)")
    p.add_argument("--down-after", type=int, default=300,
                   help="the sink goes down after this many requests (default 300)")
    p.add_argument("--down-for", type=int, default=20,
                   help="seconds the sink stays down, 0 for never (default 20)")
    p.add_argument("--seed", type=int, default=1, help="seed of the events, order and faults")
    p.add_argument("--ready-timeout", type=float, default=1200,
                   help="seconds for make dev to be ready (a cold build; default 1200)")
    p.add_argument("--settle-timeout", type=float, default=900,
                   help="seconds for every follow-up to be final after the last delivery")
    p.add_argument("--no-redrive", action="store_true",
                   help="leave follow-ups FAILED by exhausted injected faults as they are")
    p.add_argument("--keep", action="store_true",
                   help="keep the state dir (logs, sink.jsonl) after a run that holds")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--short", action="store_true",
                   help="CI preset: 48 events x 3, 8 senders, 20%% failing, 5 s down")
    args = p.parse_args(argv)
    if args.short:
        args.events, args.senders, args.fail_rate = 48, 8, 0.2
        args.down_after, args.down_for, args.settle_timeout = 20, 5, 240
    if not 0 <= args.fail_rate <= 1 or args.events < 1 or args.copies < 1 or args.senders < 1:
        p.error("need events, copies, senders >= 1 and a fail rate between 0 and 1")
    if args.down_for * 1.0 >= 120:
        print("storm: note: a down window near the 8 attempts' backoff (about 1-2 minutes "
              "locally) rightly leaves follow-ups FAILED", file=sys.stderr)
    return args


def main(argv: list[str]) -> int:
    args = options(argv)
    rng = random.Random(args.seed)
    run = f"{rng.getrandbits(32):08x}{int(time.time()) % 100000:05d}"
    events = generate(args.events, rng, run)
    order = [i for i in range(len(events)) for _ in range(args.copies)]
    rng.shuffle(order)
    report = Report()
    down = (f", down {args.down_for}s after request #{args.down_after}" if args.down_for
            else "")
    report.say(f"storm: {len(events)} events x {args.copies} = {len(order)} deliveries, "
               f"{args.senders} senders; sink failing {args.fail_rate:.0%}{down}; seed {args.seed}")
    report.say("events: " + ", ".join(f"{k} {v}" for k, v in sorted(
        collections.Counter(e.type for e in events).items())))
    report.figures.update({"events": len(events), "deliveries": len(order),
                           "senders": args.senders, "fail_rate": args.fail_rate,
                           "down_for_s": args.down_for, "down_after": args.down_after,
                           "command": "python scripts/storm.py " + " ".join(argv)})

    # The project's own mapping and ordering rule say what each event does and which one each
    # entity ends at; its own signing code signs every attempt.
    binary = build_hookline()
    final = describe(binary, events)
    report.say(f"described: {len(events)} events by their receivers' mappings, {len(final)} "
               f"entities, {sum(len(e.actions) for e in events)} event actions, "
               f"{len({(e.kind, e.entity) for e in events if e.sync})} entity syncs")
    signer = Signer(binary)
    stack = Stack(args)
    # SIGTERM (CI cancelling) takes the same way out as Ctrl-C: through `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        t = time.monotonic()
        stack.start(args.ready_timeout)
        report.say(f"stack: ready in {time.monotonic() - t:.0f}s (moto :{stack.moto}, "
                   f"functions :{stack.watch}, sink :{stack.sink}, state {stack.dir})")
        table = Table(stack.endpoint)

        start = time.monotonic()
        senders = Senders(stack.watch, events, args, signer)
        senders.run(order)
        delivered = time.monotonic() - start
        report.say(f"delivered: {len(order)} deliveries in {delivered:.1f}s "
                   f"({len(order) / delivered:.0f}/s)")

        settled = wait_settled(table, time.monotonic() + args.settle_timeout, report)
        if settled and not args.no_redrive:
            stored, entities = table.items()
            gave_up, unexplained, spans = exhausted(stored, entities,
                                                    read_sink(stack.dir / "sink.jsonl"))
            report.fail("FAILED follow-ups no injected fault explains",
                        [":".join(u) for u in unexplained])
            if gave_up:
                report.say(f"redrive: {len(gave_up)} follow-up(s) FAILED after their attempts "
                           f"all met injected 503s, within {min(spans):.1f}-{max(spans):.1f}s "
                           "of their first; `hookline redrive`, as an operator would")
                report.figures["redriven_attempt_span_s"] = [min(spans), max(spans)]
                report.figures["redriven"] = len(gave_up)
                out = stack.hookline("redrive")
                said = (out.stdout.strip() or out.stderr.strip()).splitlines()
                report.say(said[-1] if said else f"redrive: exit {out.returncode}")
                settled = wait_settled(table, time.monotonic() + args.settle_timeout, report)
        wall = time.monotonic() - start
        report.figures.update({"wall_s": round(wall, 1), "delivery_s": round(delivered, 1),
                               "settled": settled})
        report.say(f"wall time: {wall:.1f}s (deliveries {delivered:.1f}s, then follow-ups "
                   f"{wall - delivered:.1f}s){'' if settled else ' -- NOT SETTLED'}")
        if not settled:
            report.broken.append(f"follow-ups still pending after {args.settle_timeout:.0f}s")

        stored, entities = table.items()
        sink = read_sink(stack.dir / "sink.jsonl")
        check(events, final, senders.outcomes, stored, entities, sink, report)
    finally:
        stack.stop()
        signer.close()

    if args.json:
        args.json.write_text(json.dumps(report.figures, indent=2) + "\n")
    if report.broken:
        print("\nstorm: INVARIANTS BROKEN", file=sys.stderr)
        for b in report.broken:
            print(f"  - {b}", file=sys.stderr)
        print(f"  (logs: {stack.dir})", file=sys.stderr)
        return 1
    if args.keep:
        print(f"storm: every invariant holds (logs: {stack.dir})")
    else:
        shutil.rmtree(stack.dir, ignore_errors=True)
        print("storm: every invariant holds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

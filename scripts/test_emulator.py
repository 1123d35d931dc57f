#!/usr/bin/env python3
"""Tests of scripts/emulator.py: atomicity, no stalls behind SQS long polls, ClientRequestToken,
and the O(items) TransactWriteItems patch checked against moto's own implementation.

    .venv/bin/python -m unittest -v scripts/test_emulator.py
    .venv/bin/python scripts/test_emulator.py cost [--emulator PATH]   # figures, no assertions

The tests start one emulator on a free port and stop it at the end; each test uses its own tables
and queues.
"""
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import urllib.request
import uuid

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import emulator  # noqa: E402  (refuses any moto but the pinned one)

from moto.dynamodb.models import DynamoDBBackend  # noqa: E402

REGION = "us-east-1"
CREDS = dict(region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=50)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An emulator subprocess on a free port."""

    def __init__(self, script: str = os.path.join(HERE, "emulator.py")):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.devnull, "wb")
        self.proc = subprocess.Popen([sys.executable, script, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("emulator did not start: " + self.proc.stderr.read().decode())
                time.sleep(0.1)  # start-up only

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, config=NO_RETRY, **CREDS)

    def control(self, path: str, body=None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        with urllib.request.urlopen(self.url + path, data=data, timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()
        self.log.close()


SERVER: Server


def setUpModule() -> None:
    global SERVER
    SERVER = Server()


def tearDownModule() -> None:
    SERVER.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_table(ddb, range_key: bool = True) -> str:
    name = unique("t")
    keys = [("pk", "HASH")] + ([("sk", "RANGE")] if range_key else [])
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": a, "KeyType": t} for a, t in keys],
                     AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys])
    return name


def S(v: str) -> dict:
    return {"S": v}


def N(v: int) -> dict:
    return {"N": str(v)}


def key(pk: str, sk: str = "e") -> dict:
    return {"pk": S(pk), "sk": S(sk)}


def cancel_reasons(err: ClientError) -> list:
    return err.response.get("CancellationReasons", [])


class DynamoDBTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.ddb = SERVER.client("dynamodb")
        self.table = create_table(self.ddb)

    def get(self, pk: str, sk: str = "e"):
        return self.ddb.get_item(TableName=self.table, Key=key(pk, sk), ConsistentRead=True).get("Item")

    def put_new(self, pk: str, **attrs) -> dict:
        return {"Put": {"TableName": self.table, "Item": {**key(pk), **attrs},
                        "ConditionExpression": "attribute_not_exists(pk)"}}

    def add_one(self, pk: str) -> dict:
        return {"Update": {"TableName": self.table, "Key": key(pk), "UpdateExpression": "ADD cnt :one",
                           "ExpressionAttributeValues": {":one": N(1)}}}


# (a) ------------------------------------------------------------------------------------------
class Atomicity(DynamoDBTestCase):
    THREADS = 30

    def race(self, call) -> list:
        """Runs call(client) on THREADS threads released together; returns 'ok' or error codes."""
        clients = [SERVER.client("dynamodb") for _ in range(self.THREADS)]
        barrier = threading.Barrier(self.THREADS)
        results: list = [None] * self.THREADS

        def run(i: int) -> None:
            barrier.wait()
            try:
                call(clients[i], i)
                results[i] = "ok"
            except ClientError as e:
                results[i] = e.response["Error"]["Code"]

        threads = [threading.Thread(target=run, args=(i,)) for i in range(self.THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results

    def test_concurrent_conditional_puts_of_one_item_one_succeeds(self):
        results = self.race(lambda c, i: c.put_item(
            TableName=self.table, Item={**key("one"), "writer": N(i)},
            ConditionExpression="attribute_not_exists(pk)"))
        self.assertEqual(results.count("ok"), 1, results)
        self.assertEqual(results.count("ConditionalCheckFailedException"), self.THREADS - 1, results)

    def test_concurrent_transactions_on_one_item_one_succeeds(self):
        results = self.race(lambda c, i: c.transact_write_items(TransactItems=[
            self.put_new("event", writer=N(i)), self.add_one("state")]))
        self.assertEqual(results.count("ok"), 1, results)
        self.assertEqual(results.count("TransactionCanceledException"), self.THREADS - 1, results)
        self.assertEqual(self.get("state")["cnt"], N(1))


# (b) ------------------------------------------------------------------------------------------
class NoStallBehindLongPoll(unittest.TestCase):
    def setUp(self) -> None:
        self.sqs = SERVER.client("sqs")
        self.ddb = SERVER.client("dynamodb")

    def start_long_poll(self, queue_url: str, wait: int = 5):
        """A ReceiveMessage(WaitTimeSeconds=wait) on its own thread, returned once the emulator
        reports it waiting."""
        poller = SERVER.client("sqs")
        sent = threading.Event()
        poller.meta.events.register("before-send.sqs.ReceiveMessage", lambda **_: sent.set())
        got: list = []
        thread = threading.Thread(target=lambda: got.extend(poller.receive_message(
            QueueUrl=queue_url, WaitTimeSeconds=wait).get("Messages", [])))
        thread.start()
        self.assertTrue(sent.wait(10))
        deadline = time.monotonic() + wait
        while SERVER.control("/hookline-emulator/state")["long_polls_waiting"] < 1:
            self.assertLess(time.monotonic(), deadline, "the long poll never waited")
        return thread, got

    def finish(self, thread, got, queue_url: str) -> None:
        """Ends the poll early with a message, which also shows that a send wakes it."""
        self.sqs.send_message(QueueUrl=queue_url, MessageBody="wake")
        thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertEqual([m["Body"] for m in got], ["wake"])

    def test_dynamodb_calls_complete_while_a_long_poll_waits(self):
        table = create_table(self.ddb)
        queue = self.sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
        thread, got = self.start_long_poll(queue)
        self.ddb.put_item(TableName=table, Item=key("a"), ConditionExpression="attribute_not_exists(pk)")
        self.ddb.get_item(TableName=table, Key=key("a"))
        self.assertTrue(thread.is_alive(), "DynamoDB calls waited for the long poll")
        self.finish(thread, got, queue)

    def test_sqs_send_to_another_queue_completes_while_a_long_poll_waits(self):
        polled = self.sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
        other = self.sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
        thread, got = self.start_long_poll(polled)
        self.sqs.send_message(QueueUrl=other, MessageBody="x")
        self.assertTrue(thread.is_alive(), "SendMessage waited for the long poll")
        self.finish(thread, got, polled)
        self.assertEqual(self.sqs.receive_message(QueueUrl=other)["Messages"][0]["Body"], "x")

    def test_sqs_query_protocol_is_routed_as_sqs(self):
        polled = self.sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
        other = self.sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
        thread, got = self.start_long_poll(polled)
        body = urllib.parse.urlencode({"Action": "SendMessage", "Version": "2012-11-05",
                                       "QueueUrl": other, "MessageBody": "query"})
        request = AWSRequest(method="POST", url=SERVER.url + "/", data=body,
                             headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(Credentials("test", "test"), "sqs", REGION).add_auth(request)
        prepared = request.prepare()
        with urllib.request.urlopen(urllib.request.Request(
                prepared.url, data=body.encode(), headers=dict(prepared.headers)), timeout=10) as r:
            self.assertIn(b"MessageId", r.read())
        self.assertTrue(thread.is_alive(), "a query-protocol SendMessage waited for the long poll")
        self.finish(thread, got, polled)
        self.assertEqual(self.sqs.receive_message(QueueUrl=other)["Messages"][0]["Body"], "query")

    def test_concurrent_long_polls_each_get_a_different_message(self):
        queue = self.sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
        pollers = [SERVER.client("sqs") for _ in range(5)]
        got: list = []
        threads = [threading.Thread(target=lambda p=p: got.extend(p.receive_message(
            QueueUrl=queue, WaitTimeSeconds=10, MaxNumberOfMessages=1).get("Messages", [])))
            for p in pollers]
        for t in threads:
            t.start()
        for i in range(5):
            self.sqs.send_message(QueueUrl=queue, MessageBody=str(i))
        for t in threads:
            t.join(15)
        self.assertEqual(sorted(m["Body"] for m in got), ["0", "1", "2", "3", "4"])


# (c) ------------------------------------------------------------------------------------------
class ClientRequestToken(DynamoDBTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.raw: list = []
        self.ddb.meta.events.register("after-call.dynamodb.TransactWriteItems",
                                      lambda http_response, **_: self.raw.append(
                                          (http_response.status_code, http_response.content)))

    def tearDown(self) -> None:
        SERVER.control("/hookline-emulator/clock", {"offset_secs": 0})

    def transact(self, items, token):
        return self.ddb.transact_write_items(TransactItems=items, ClientRequestToken=token)

    def test_same_token_same_request_replays_the_first_success_and_writes_once(self):
        token, items = unique("tok"), [self.put_new("event"), self.add_one("state")]
        self.transact(items, token)
        self.transact(items, token)  # the Put's condition would fail if evaluated again
        self.assertEqual(self.get("state")["cnt"], N(1))
        self.assertEqual(self.raw[0], self.raw[1])
        self.assertEqual(self.raw[0][0], 200)

    def test_same_token_different_request_is_a_mismatch(self):
        token = unique("tok")
        self.transact([self.put_new("a"), self.add_one("state")], token)
        with self.assertRaises(ClientError) as cm:
            self.transact([self.put_new("b"), self.add_one("state")], token)
        self.assertEqual(cm.exception.response["Error"]["Code"], "IdempotentParameterMismatchException")
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        self.assertIsNone(self.get("b"))
        self.assertEqual(self.get("state")["cnt"], N(1))

    def test_a_token_expires_after_ten_minutes(self):
        token, items = unique("tok"), [self.put_new("event"), self.add_one("state")]
        self.transact(items, token)
        SERVER.control("/hookline-emulator/clock", {"offset_secs": 599})
        self.transact(items, token)  # still inside the window: replayed
        SERVER.control("/hookline-emulator/clock", {"offset_secs": 601})
        with self.assertRaises(ClientError) as cm:
            self.transact(items, token)  # evaluated afresh: the event exists
        self.assertEqual([r["Code"] for r in cancel_reasons(cm.exception)],
                         ["ConditionalCheckFailed", "None"])
        self.assertEqual(self.get("state")["cnt"], N(1))

    def test_a_failed_attempt_is_not_remembered(self):
        token = unique("tok")
        items = [{"ConditionCheck": {"TableName": self.table, "Key": key("parent"),
                                     "ConditionExpression": "attribute_exists(pk)"}},
                 self.put_new("child")]
        with self.assertRaises(ClientError) as cm:
            self.transact(items, token)
        self.assertEqual(cm.exception.response["Error"]["Code"], "TransactionCanceledException")
        self.ddb.put_item(TableName=self.table, Item=key("parent"))
        self.transact(items, token)
        self.assertIsNotNone(self.get("child"))

    def test_a_reset_forgets_tokens(self):
        token, items = unique("tok"), [self.put_new("event"), self.add_one("state")]
        self.transact(items, token)
        SERVER.control("/hookline-emulator/clock", {"offset_secs": 30})
        urllib.request.urlopen(urllib.request.Request(SERVER.url + "/moto-api/reset", method="POST"), timeout=10)
        self.assertEqual(SERVER.control("/hookline-emulator/state")["clock_offset_secs"], 0)
        self.ddb.create_table(TableName=self.table, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                         {"AttributeName": "sk", "KeyType": "RANGE"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                    {"AttributeName": "sk", "AttributeType": "S"}])
        self.transact(items, token)  # evaluated afresh on the new table
        self.assertEqual(self.get("state")["cnt"], N(1))
        self.assertIsNotNone(self.get("event"))


# (d) ------------------------------------------------------------------------------------------
class TransactionSemantics(DynamoDBTestCase):
    def test_cancellation_reasons_in_order_with_all_old_item_and_nothing_written(self):
        self.ddb.put_item(TableName=self.table, Item={**key("a"), "v": N(1)})
        self.ddb.put_item(TableName=self.table, Item={**key("d"), "v": N(1)})
        with self.assertRaises(ClientError) as cm:
            self.ddb.transact_write_items(TransactItems=[
                {"ConditionCheck": {"TableName": self.table, "Key": key("missing"),
                                    "ConditionExpression": "attribute_exists(pk)",
                                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
                self.put_new("c"),
                {"Update": {"TableName": self.table, "Key": key("a"), "UpdateExpression": "SET v = :new",
                            "ConditionExpression": "v = :two",
                            "ExpressionAttributeValues": {":new": N(3), ":two": N(2)},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
                {"Delete": {"TableName": self.table, "Key": key("d"),
                            "ConditionExpression": "v = :two",
                            "ExpressionAttributeValues": {":two": N(2)}}},
            ])
        self.assertEqual(cm.exception.response["Error"]["Code"], "TransactionCanceledException")
        reasons = cancel_reasons(cm.exception)
        self.assertEqual([r["Code"] for r in reasons],
                         ["ConditionalCheckFailed", "None", "ConditionalCheckFailed", "ConditionalCheckFailed"])
        self.assertNotIn("Item", reasons[0])  # ALL_OLD, but there is no old item
        self.assertEqual(reasons[2]["Item"], {**key("a"), "v": N(1)})
        self.assertNotIn("Item", reasons[3])  # no ALL_OLD asked
        self.assertIsNone(self.get("c"))
        self.assertEqual(self.get("a")["v"], N(1))
        self.assertIsNotNone(self.get("d"))

    def test_a_passing_transaction_applies_every_kind_of_item(self):
        self.ddb.put_item(TableName=self.table, Item={**key("parent"), "v": N(1)})
        self.ddb.put_item(TableName=self.table, Item={**key("upd"), "v": N(1)})
        self.ddb.put_item(TableName=self.table, Item={**key("del"), "v": N(1)})
        self.ddb.transact_write_items(TransactItems=[
            {"ConditionCheck": {"TableName": self.table, "Key": key("parent"),
                                "ConditionExpression": "v = :one", "ExpressionAttributeValues": {":one": N(1)}}},
            self.put_new("new", v=N(9)),
            {"Update": {"TableName": self.table, "Key": key("upd"), "UpdateExpression": "SET v = v + :one",
                        "ConditionExpression": "v = :one", "ExpressionAttributeValues": {":one": N(1)}}},
            {"Delete": {"TableName": self.table, "Key": key("del"),
                        "ConditionExpression": "attribute_exists(pk)"}},
        ])
        self.assertEqual(self.get("parent")["v"], N(1))
        self.assertEqual(self.get("new")["v"], N(9))
        self.assertEqual(self.get("upd")["v"], N(2))
        self.assertIsNone(self.get("del"))

    def test_two_operations_on_one_item_is_a_validation_error(self):
        with self.assertRaises(ClientError) as cm:
            self.ddb.transact_write_items(TransactItems=[
                self.put_new("other"), self.put_new("a"), self.add_one("a")])
        self.assertEqual(cm.exception.response["Error"]["Code"], "ValidationException")
        self.assertIsNone(self.get("other"))
        self.assertIsNone(self.get("a"))

    def test_a_validation_error_after_an_applied_item_rolls_it_back(self):
        self.ddb.put_item(TableName=self.table, Item={**key("upd"), "v": N(1)})
        with self.assertRaises(ClientError) as cm:
            self.ddb.transact_write_items(TransactItems=[
                self.put_new("first"),
                {"Update": {"TableName": self.table, "Key": key("upd"), "UpdateExpression": "SET v = :v",
                            "ExpressionAttributeValues": {":v": N(5)}}},
                {"Update": {"TableName": self.table, "Key": key("x"), "UpdateExpression": "SET pk = :v",
                            "ExpressionAttributeValues": {":v": S("y")}}},  # a key can't be updated
            ])
        self.assertEqual(cm.exception.response["Error"]["Code"], "ValidationException")
        self.assertIsNone(self.get("first"))
        self.assertEqual(self.get("upd")["v"], N(1))
        self.assertIsNone(self.get("x"))


# The patch against moto's own transact_write_items, in process: the same random transactions on
# two backends with the same tables, one with each implementation; answers and states must agree.
class PatchMatchesMoto(unittest.TestCase):
    TABLES = {"h": False, "hr": True, "hs": False, "hrs": True}  # name -> has a range key; *s: stream

    def backend(self) -> DynamoDBBackend:
        b = DynamoDBBackend(REGION, "123456789012")
        for name, ranged in self.TABLES.items():
            keys = [("pk", "HASH")] + ([("sk", "RANGE")] if ranged else [])
            b.create_table(name, schema=[{"AttributeName": a, "KeyType": t} for a, t in keys],
                           throughput=None, attr=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys],
                           global_indexes=None, indexes=None, billing_mode="PAY_PER_REQUEST",
                           streams={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
                           if name.endswith("s") else None,
                           sse_specification=None, tags=[], deletion_protection_enabled=False,
                           warm_throughput=None)
        return b

    @staticmethod
    def state(b: DynamoDBBackend):
        out = {}
        for name, table in b.tables.items():
            items = {}
            for h, v in table.items.items():  # empty buckets included
                items[repr(h)] = ({repr(r): i.to_json() for r, i in v.items()} if isinstance(v, dict)
                                  else v.to_json())
            stream = None
            if table.stream_shard is not None:
                stream = [(r.record["eventName"], r.record["dynamodb"].get("Keys"),
                           r.record["dynamodb"].get("NewImage"), r.record["dynamodb"].get("OldImage"))
                          for r in table.stream_shard.items]
            out[name] = (items, stream)
        return out

    @staticmethod
    def outcome(fn, b, items):
        try:
            fn(b, items)
            return ("ok",)
        except Exception as e:  # noqa: BLE001
            return (type(e).__name__, getattr(e, "description", str(e)))

    @staticmethod
    def random_item(rng: random.Random, used: set):
        table = rng.choice(["h", "hr", "hs", "hrs", "h", "hr"] + (["missing"] if rng.random() < 0.03 else []))
        while True:
            pk = rng.choice("abcd")
            sk = rng.choice("12")
            if (table, pk, sk) not in used or rng.random() < 0.05:  # sometimes a duplicate item
                used.add((table, pk, sk))
                break
        k = {"pk": S(pk)}
        if table in ("hr", "hrs") or (table == "missing" and rng.random() < 0.5):
            k["sk"] = S(sk)
        if rng.random() < 0.03:  # a key that doesn't fit the table
            if "sk" in k:
                del k["sk"]
            else:
                k["sk"] = S(sk)
        names, values = {}, {}
        cond = rng.choice([None, None, "attribute_not_exists(pk)", "attribute_exists(pk)",
                           "cnt < :lim", "v = :v", "attribute_not_exists(#v) OR #v <> :v",
                           "size(v) > :zero", "cnt BETWEEN :zero AND :lim"] + (["cnt <"] if rng.random() < 0.02 else []))
        if cond:
            if ":lim" in cond:
                values[":lim"] = N(rng.randint(0, 3))
            if ":v" in cond:
                values[":v"] = S(rng.choice("xyz"))
            if ":zero" in cond:
                values[":zero"] = N(0)
            if "#v" in cond:
                names["#v"] = "v"
        kind = rng.choice(["Put", "Update", "Update", "Delete", "ConditionCheck"])
        op = {"TableName": table}
        if kind == "Put":
            attrs = {**k, "v": S(rng.choice("xyz")), "cnt": N(rng.randint(0, 3))}
            if rng.random() < 0.03:
                attrs["pk"] = N(1)  # the wrong key type: a ValidationException mid-transaction
            op["Item"] = attrs
        else:
            op["Key"] = k
        if kind == "Update":
            expr = rng.choice(["ADD cnt :one", "SET v = :nv", "SET cnt = cnt + :one", "REMOVE v",
                               "SET #w = :nv, cnt = if_not_exists(cnt, :one)", "SET pk = :nv",
                               "SET l = list_append(l, :l)"])
            op["UpdateExpression"] = expr
            if ":one" in expr:
                values[":one"] = N(1)
            if ":nv" in expr:
                values[":nv"] = S(rng.choice("xyz"))
            if ":l" in expr:
                values[":l"] = {"L": [S("e")]}
            if "#w" in expr:
                names["#w"] = "v"
        if cond:
            op["ConditionExpression"] = cond
        if names:
            op["ExpressionAttributeNames"] = names
        if values:
            op["ExpressionAttributeValues"] = values
        if rng.random() < 0.5:
            op["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if kind == "ConditionCheck" and "ConditionExpression" not in op:
            op["ConditionExpression"] = "attribute_exists(pk)"
        return {kind: op}

    def test_random_transactions_answer_and_leave_state_as_moto_does(self):
        rng = random.Random(20260101)
        ours, theirs = self.backend(), self.backend()
        seen: dict = {}
        for n in range(1500):
            used: set = set()
            items = [self.random_item(rng, used) for _ in range(rng.randint(1, 4))]
            before = self.state(ours)
            a = self.outcome(emulator.transact_write_items, ours, items)
            b = self.outcome(emulator.MOTO_TRANSACT_WRITE_ITEMS, theirs, items)
            self.assertEqual(a, b, f"transaction {n}: {items}")
            after = self.state(ours)
            self.assertEqual(after, self.state(theirs), f"transaction {n}: {items}")
            if a[0] != "ok":
                self.assertEqual(after, before, f"transaction {n} failed but wrote: {items}")
            kind = a[0]
            if kind == "TransactionCanceledException":
                reasons = json.loads(a[1])["CancellationReasons"]
                kind += "+Item" if any("Item" in r for r in reasons) else ""
                kind += "+other" if any(r["Code"] not in ("None", "ConditionalCheckFailed") for r in reasons) else ""
            seen[kind] = seen.get(kind, 0) + 1
        # The random transactions reached every kind of outcome.
        for kind in ("ok", "TransactionCanceledException", "TransactionCanceledException+Item",
                     "MockValidationException", "MultipleTransactionsException",
                     "InvalidAttributeTypeError", "UpdateHashRangeKeyException"):
            self.assertIn(kind, seen, seen)
        self.assertTrue(any(k.endswith("+other") for k in seen), seen)

    def test_deliberate_differences_roll_back_where_moto_leaves_items_written(self):
        for items in (
            [{"Put": {"TableName": "h", "Item": {"pk": S("a")}}},
             {"Put": {"TableName": "h", "Item": {"pk": S("b")}}, "Delete": {"TableName": "h", "Key": {"pk": S("c")}}}],
        ):
            ours, theirs = self.backend(), self.backend()
            self.assertEqual(self.outcome(emulator.transact_write_items, ours, items)[0],
                             "TransactWriteSingleOpException")
            self.outcome(emulator.MOTO_TRANSACT_WRITE_ITEMS, theirs, items)
            self.assertEqual(len(ours.get_table("h")), 0)
            self.assertEqual(len(theirs.get_table("h")), 1)  # moto 5.2.5
        ours, theirs = self.backend(), self.backend()
        arn = ours.get_table("h").table_arn
        items = [{"Put": {"TableName": arn, "Item": {"pk": S("a")}}},
                 {"ConditionCheck": {"TableName": arn, "Key": {"pk": S("b")},
                                     "ConditionExpression": "attribute_exists(pk)"}}]
        self.assertEqual(self.outcome(emulator.transact_write_items, ours, items)[0],
                         "TransactionCanceledException")
        self.outcome(emulator.MOTO_TRANSACT_WRITE_ITEMS, theirs, items)
        self.assertEqual(len(ours.get_table("h")), 0)
        self.assertEqual(len(theirs.get_table("h")), 1)  # moto 5.2.5


class Lanes(unittest.TestCase):
    """Which lock each kind of request takes."""

    def environ(self, service: str, body: bytes, headers: dict, path: str = "/"):
        from werkzeug.test import EnvironBuilder
        request = AWSRequest(method="POST", url="http://127.0.0.1:4566" + path, data=body, headers=headers)
        SigV4Auth(Credentials("test", "test"), service, REGION).add_auth(request)
        return EnvironBuilder(path=path, method="POST", data=body,
                              headers=dict(request.prepare().headers)).get_environ()

    def test_requests_take_the_lock_of_their_service(self):
        app = emulator.Emulator()
        json_10 = {"Content-Type": "application/x-amz-json-1.0"}
        form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        cases = [
            ("dynamodb", self.environ("dynamodb", b"{}", {**json_10, "X-Amz-Target": "DynamoDB_20120810.GetItem"})),
            ("sqs", self.environ("sqs", b"{}", {**json_10, "X-Amz-Target": "AmazonSQS.ReceiveMessage"})),
            ("sqs", self.environ("sqs", b"Action=ReceiveMessage&Version=2012-11-05&WaitTimeSeconds=20", form)),
            ("dynamodb", self.environ("sts", b"Action=GetCallerIdentity&Version=2011-06-15", form)),
            ("both", self.environ("s3", b"", {}, path="/moto-api/reset")),
            ("both", self.environ("s3", b"", {}, path="/hookline-emulator/clock")),
        ]
        for lane, environ in cases:
            self.assertEqual(app.lane(environ), lane, environ.get("HTTP_X_AMZ_TARGET") or environ["PATH_INFO"])


class StartUp(unittest.TestCase):
    def test_refuses_another_moto_version(self):
        code = ("import moto, runpy, sys; moto.__version__ = '5.2.6'; sys.argv = ['emulator.py'];"
                f"runpy.run_path({os.path.join(HERE, 'emulator.py')!r}, run_name='__main__')")
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("moto 5.2.6 is installed", run.stderr)


# (e) ------------------------------------------------------------------------------------------
def cost(script: str, transactions: int = 200, loaded: int = 5000) -> None:
    """Prints the time of `transactions` two-item TransactWriteItems on an empty table, then after
    `loaded` items are in it."""
    server = Server(script)
    try:
        ddb = server.client("dynamodb")
        table = create_table(ddb)

        def run(tag: str) -> float:
            start = time.perf_counter()
            for i in range(transactions):
                ddb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": table, "Item": key(f"{tag}-event-{i}"),
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Update": {"TableName": table, "Key": key(f"{tag}-state-{i % 10}"),
                                "UpdateExpression": "ADD cnt :one", "ExpressionAttributeValues": {":one": N(1)}}},
                ])
            return time.perf_counter() - start

        empty = run("empty")
        for start in range(0, loaded, 25):
            ddb.batch_write_item(RequestItems={table: [
                {"PutRequest": {"Item": {**key(f"load-{j}"), "body": S("x" * 200)}}}
                for j in range(start, min(start + 25, loaded))]})
        size = sum(page["Count"] for page in
                   ddb.get_paginator("scan").paginate(TableName=table, Select="COUNT"))
        full = run("full")
        print(f"{os.path.basename(script)}: {transactions} TransactWriteItems (2 items each): "
              f"{empty:.2f} s on a table of 0 items ({1000 * empty / transactions:.1f} ms each), "
              f"{full:.2f} s on a table of {size} items ({1000 * full / transactions:.1f} ms each)")
    finally:
        start = time.perf_counter()
        server.stop()
        print(f"  (the emulator took {time.perf_counter() - start:.1f} s to stop)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["cost"]:
        import argparse
        parser = argparse.ArgumentParser(prog="test_emulator.py cost")
        parser.add_argument("--emulator", default=os.path.join(HERE, "emulator.py"))
        cost(parser.parse_args(sys.argv[2:]).emulator)
    else:
        unittest.main()

#!/usr/bin/env python3
"""The local AWS emulator: moto's server (pinned 5.2.5), patched to keep DynamoDB's guarantees.

Usage: .venv/bin/python scripts/emulator.py [-H 127.0.0.1] [-p 4566]

Why not `moto_server` itself: it serves each request on its own thread, and moto's DynamoDB backend
holds no lock between a condition check and the write after it, so two concurrent
`attribute_not_exists` writes of one item can both succeed (the test of 50 concurrent deliveries
caught two "accepted" answers). Hookline's idempotency rests on DynamoDB never allowing that.

Invariants this server keeps (connections are still served on threads):
1. DynamoDB requests (X-Amz-Target `DynamoDB_20120810.*`), reads included, run one at a time under
   the DynamoDB lock: every conditional write and every transaction is atomic.
2. SQS requests (JSON protocol, X-Amz-Target `AmazonSQS.*`, or query protocol, as moto routes it)
   never take the DynamoDB lock. They run one at a time under their own lock (moto's queues are not
   thread-safe: two receives could take one message, a delete could drop a concurrent send), which
   a ReceiveMessage long poll releases while it waits. So no DynamoDB or SQS call waits on a long
   poll, and no SQS call waits on DynamoDB.
3. Any other request takes the DynamoDB lock; /moto-api/ and /hookline-emulator/ take both locks
   (DynamoDB first, the only order in which both are ever held), so a reset runs beside nothing.
4. TransactWriteItems honours ClientRequestToken as DynamoDB does: a success is remembered for 10
   minutes per (access key, region, token). The same token with the same request (parsed JSON body)
   replays that success (same status, headers, body) without evaluating conditions again; with a
   different request it answers 400 IdempotentParameterMismatchException. A failure is not
   remembered: its retry is evaluated afresh. The AWS SDKs reuse the token on their own retries.
5. TransactWriteItems costs O(items in the transaction), not O(table size): moto 5.2.5 deep-copies
   every table a transaction names (once per item) to roll back a failure. The patch runs moto's own
   per-item loop and helpers unchanged, but journals only the items it touches (a deep copy of each,
   plus each stream's length) and restores them, newest first, on any failure. Outcomes are moto's:
   all-or-nothing, CancellationReasons in item order (with `Item` for ALL_OLD), ValidationExceptions.
   Two deliberate differences, both AWS's behaviour: an item holding two operations, or a table named
   by ARN, also rolls back earlier items (moto 5.2.5 leaves them written).
6. The patches are written against moto 5.2.5: any other version refuses to start (exit 1).

Control endpoints (not AWS):
  GET  /hookline-emulator/state   {"clock_offset_secs": x, "long_polls_waiting": n}
  POST /hookline-emulator/clock   {"offset_secs": 601}  shifts the clock that the token window is
                                  measured on (tests of the 10-minute expiry, without sleeping)
  POST /moto-api/reset            moto's reset; also forgets tokens and the clock offset
"""
import argparse
import copy
import io
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any

import moto

MOTO_VERSION = "5.2.5"  # the version the patches below were read against


def refuse_other_moto() -> None:
    if moto.__version__ != MOTO_VERSION:
        sys.exit(
            f"emulator.py: moto {moto.__version__} is installed, but its patches were written "
            f"against moto {MOTO_VERSION} (moto/dynamodb/models/__init__.py transact_write_items, "
            "moto/sqs/models.py Queue.wait_for_messages). Re-read those, update the patches and "
            "MOTO_VERSION, then run scripts/test_emulator.py."
        )


refuse_other_moto()

from moto.dynamodb.exceptions import (  # noqa: E402
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.comparisons import get_filter_expression  # noqa: E402
from moto.dynamodb.models import DynamoDBBackend  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.sqs.models import Queue  # noqa: E402
from werkzeug.serving import run_simple  # noqa: E402
from werkzeug.wsgi import get_input_stream  # noqa: E402

DYNAMODB_TARGET = "DynamoDB_20120810."
SQS_TARGET = "AmazonSQS."
TOKEN_WINDOW_SECS = 600.0
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"

# ---------------------------------------------------------------------------------------------
# The clock of the ClientRequestToken window. Tests move it with POST /hookline-emulator/clock.
_clock_offset = 0.0


def now() -> float:
    return time.monotonic() + _clock_offset


# ---------------------------------------------------------------------------------------------
# TransactWriteItems at O(items touched): moto 5.2.5's method, with its table deep copies replaced
# by a journal. Keep the loop below line for line as moto's, apart from the lines marked HOOKLINE.
MOTO_TRANSACT_WRITE_ITEMS = DynamoDBBackend.transact_write_items
_MISSING = object()


class _Journal:
    """The state of each item slot a transaction touches, restored newest first on failure."""

    def __init__(self) -> None:
        self.slots: list[tuple[Any, Any, Any, bool, Any]] = []
        self.streams: dict[int, tuple[Any, list, int]] = {}

    def touch(self, backend: DynamoDBBackend, table_name: str, key: dict[str, Any]) -> None:
        # The same lookups, in the same order, as the backend.get_item(table_name, key) that
        # follows, so they raise what it would raise; read with .get(), never creating a bucket.
        table = backend.get_table(table_name)
        hash_key, range_key = backend.get_keys_value(table, key)
        bucket_existed = hash_key in table.items
        if range_key is not None:
            bucket = table.items.get(hash_key)
            old = bucket.get(range_key, _MISSING) if bucket is not None else _MISSING
        else:
            old = table.items.get(hash_key, _MISSING)
        if old is not _MISSING:
            old = copy.deepcopy(old)  # update_item changes the stored Item in place
        self.slots.append((table, hash_key, range_key, bucket_existed, old))
        shard = table.stream_shard
        if shard is not None and id(table) not in self.streams:
            self.streams[id(table)] = (shard, shard.items, len(shard.items))

    def rollback(self) -> None:
        for table, hash_key, range_key, bucket_existed, old in reversed(self.slots):
            if range_key is not None:
                if not bucket_existed:
                    table.items.pop(hash_key, None)  # the bucket is the transaction's own
                elif old is _MISSING:
                    table.items[hash_key].pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = old
            elif old is _MISSING:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = old
        for shard, records, length in self.streams.values():
            del records[length:]
            shard.items = records


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    journal = _Journal()  # HOOKLINE: instead of a deep copy of each table named

    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[Any] = []  # [(Code, Message, Item), ..]
    try:  # HOOKLINE: a validation error rolls back, whatever raised it
        for item in transact_items:
            original_item: dict[str, Any] | None = None
            # Check transact writes are not performing multiple operations on the same item
            if len(list(item.keys())) > 1:
                raise TransactWriteSingleOpException

            try:
                op_type, op = next(iter(item.items()))
                if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                    raise ValueError("Unsupported transaction operation")

                table_name = op["TableName"]
                condition_expression = op.get("ConditionExpression")
                expression_attribute_names = op.get("ExpressionAttributeNames")
                expression_attribute_values = op.get("ExpressionAttributeValues")
                return_values_on_condition_check_failure = op.get(
                    "ReturnValuesOnConditionCheckFailure"
                )

                if op_type == "Put":
                    attrs = op["Item"]
                    table = self.get_table(table_name)
                    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attrs[table.range_key_attr]
                else:
                    key = op["Key"]

                check_unicity(table_name, key)

                journal.touch(self, table_name, key)  # HOOKLINE
                current = self.get_item(table_name, key)
                if condition_expression is not None:
                    condition_op = get_filter_expression(
                        condition_expression,
                        expression_attribute_names,
                        expression_attribute_values,
                    )
                    if not condition_op.expr(current):
                        if return_values_on_condition_check_failure == "ALL_OLD" and current:
                            original_item = current.to_json()["Attributes"]
                        raise ConditionalCheckFailed(item=original_item)

                if op_type == "Put":
                    attrs = op["Item"]
                    self.put_item(
                        table_name,
                        attrs,
                        condition_expression=condition_expression,
                        expression_attribute_names=expression_attribute_names,
                        expression_attribute_values=expression_attribute_values,
                    )
                elif op_type == "Delete":
                    self.delete_item(
                        table_name,
                        key,
                        condition_expression=condition_expression,
                        expression_attribute_names=expression_attribute_names,
                        expression_attribute_values=expression_attribute_values,
                    )
                elif op_type == "Update":
                    update_expression = op["UpdateExpression"]
                    self.update_item(
                        table_name,
                        key,
                        update_expression=update_expression,
                        condition_expression=condition_expression,
                        expression_attribute_names=expression_attribute_names,
                        expression_attribute_values=expression_attribute_values,
                    )
                errors.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                raise  # HOOKLINE: rolled back below
            except ConditionalCheckFailed as e:
                errors.append(("ConditionalCheckFailed", str(e.message), original_item))
            except Exception as e:  # noqa: BLE001 -- moto records any other error as a reason
                errors.append((type(e).__name__, str(e), original_item))
    except MockValidationException:  # MultipleTransactions and TransactWriteSingleOp included
        journal.rollback()
        raise

    if any(code is not None for code, _, _ in errors):
        journal.rollback()
        raise TransactionCanceledException(errors)


# ---------------------------------------------------------------------------------------------
# SQS: one request at a time, but a long poll lets go of the lock while it waits.
SQS_LOCK = threading.Lock()
_sqs_thread = threading.local()  # .holds: this thread holds SQS_LOCK for its request
MOTO_WAIT_FOR_MESSAGES = Queue.wait_for_messages
_waiting_lock = threading.Lock()
_long_polls_waiting = 0


@contextmanager
def sqs_turn():
    with SQS_LOCK:
        _sqs_thread.holds = True
        try:
            yield
        finally:
            _sqs_thread.holds = False


def wait_for_messages(self: Queue, timeout: int) -> None:
    """moto's ReceiveMessage loop calls this, 1 s at a time, while its queue has nothing to give."""
    global _long_polls_waiting
    holds = getattr(_sqs_thread, "holds", False)
    if holds:
        _sqs_thread.holds = False
        SQS_LOCK.release()
    with _waiting_lock:
        _long_polls_waiting += 1
    try:
        MOTO_WAIT_FOR_MESSAGES(self, timeout)  # wakes on a send to this queue
    finally:
        with _waiting_lock:
            _long_polls_waiting -= 1
        if holds:
            SQS_LOCK.acquire()
            _sqs_thread.holds = True


def install_patches() -> None:
    DynamoDBBackend.transact_write_items = transact_write_items
    Queue.wait_for_messages = wait_for_messages


# ---------------------------------------------------------------------------------------------
# The WSGI application.
class TokenCache:
    """TransactWriteItems successes by (access key, region, ClientRequestToken), oldest first."""

    def __init__(self) -> None:
        self.entries: OrderedDict[tuple[str, str, str], tuple[float, Any, str, list, bytes]] = (
            OrderedDict()
        )

    def get(self, key: tuple[str, str, str], at: float):
        while self.entries:  # forget the expired, so memory stays bounded
            first = next(iter(self.entries.values()))
            if at - first[0] < TOKEN_WINDOW_SECS:
                break
            self.entries.popitem(last=False)
        entry = self.entries.get(key)
        return entry if entry is not None and at - entry[0] < TOKEN_WINDOW_SECS else None

    def put(self, key: tuple[str, str, str], entry) -> None:
        self.entries.pop(key, None)
        self.entries[key] = entry


def _scope(environ: dict[str, Any]) -> tuple[str, str]:
    m = re.search(r"Credential=([^/,\s]+)/[^/]*/([^/]*)/", environ.get("HTTP_AUTHORIZATION", ""))
    return (m.group(1), m.group(2)) if m else ("", "")


def _run(app, environ, start_response) -> list[bytes]:
    """Produces the whole response, so that a caller's lock covers all of it."""
    result = app(environ, start_response)
    try:
        return list(result)
    finally:
        if hasattr(result, "close"):
            result.close()


def _json_response(start_response, status: str, body: Any, headers=()) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data))), *headers])
    return [data]


class Emulator:
    def __init__(self) -> None:
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.dynamodb_lock = threading.Lock()
        self.tokens = TokenCache()

    def lane(self, environ) -> str:
        """Which locks a request takes: "dynamodb", "sqs" or "both" (the control endpoints)."""
        path = environ.get("PATH_INFO", "")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(DYNAMODB_TARGET):
            return "dynamodb"
        if path.startswith("/moto-api") or path.startswith("/hookline-emulator/"):
            return "both"
        if target.startswith(SQS_TARGET):
            return "sqs"
        # The query protocol, told by the signature's service (or the Host), as moto routes it.
        if self.moto.get_application(environ) is self.moto.app_instances.get("sqs"):
            return "sqs"
        return "dynamodb"

    def __call__(self, environ, start_response):
        lane = self.lane(environ)
        if lane == "sqs":
            with sqs_turn():
                return _run(self.moto, environ, start_response)
        with self.dynamodb_lock:
            if lane == "dynamodb":
                if environ.get("HTTP_X_AMZ_TARGET") == DYNAMODB_TARGET + "TransactWriteItems":
                    return self.transact_write_items(environ, start_response)
                return _run(self.moto, environ, start_response)
            with sqs_turn():
                path = environ.get("PATH_INFO", "")
                if path.startswith("/hookline-emulator/"):
                    return self.control(path, environ, start_response)
                response = _run(self.moto, environ, start_response)
                if path.rstrip("/") == "/moto-api/reset" and environ["REQUEST_METHOD"] == "POST":
                    self.reset()
                return response

    def reset(self) -> None:
        global _clock_offset
        self.tokens = TokenCache()
        _clock_offset = 0.0

    def control(self, path, environ, start_response):
        global _clock_offset
        if path == "/hookline-emulator/clock" and environ["REQUEST_METHOD"] == "POST":
            try:
                body = json.loads(get_input_stream(environ).read() or b"{}")
                _clock_offset = float(body["offset_secs"])
            except (ValueError, KeyError, TypeError) as e:
                return _json_response(start_response, "400 Bad Request",
                                      {"error": f'expected {{"offset_secs": <number>}}: {e}'})
        elif path not in ("/hookline-emulator/clock", "/hookline-emulator/state"):
            return _json_response(start_response, "404 Not Found", {"error": "no such endpoint"})
        with _waiting_lock:
            waiting = _long_polls_waiting
        return _json_response(start_response, "200 OK",
                              {"clock_offset_secs": _clock_offset, "long_polls_waiting": waiting})

    def transact_write_items(self, environ, start_response):
        """Called under the DynamoDB lock."""
        data = get_input_stream(environ).read()
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        try:
            request = json.loads(data)
            token = request.get("ClientRequestToken")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str):
            return _run(self.moto, environ, start_response)
        key = (*_scope(environ), token)
        at = now()
        seen = self.tokens.get(key, at)
        if seen is not None:
            _, first_request, status, headers, body = seen
            if request != first_request:
                body = json.dumps({
                    "__type": ERROR_PREFIX + "IdempotentParameterMismatchException",
                    "message": "The ClientRequestToken was already used, within the last 10 "
                               "minutes, by a TransactWriteItems request with different parameters",
                }).encode()
                start_response("400 Bad Request", [
                    ("Content-Type", "application/x-amz-json-1.0"),
                    ("Content-Length", str(len(body))),
                    ("x-amzn-RequestId", str(uuid.uuid4())),
                    ("x-amz-crc32", str(zlib.crc32(body))),
                ])
                return [body]
            start_response(status, headers)
            return [body]
        captured: dict[str, Any] = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, list(headers)
            return start_response(status, headers, exc_info)

        chunks = _run(self.moto, environ, capture)
        if captured.get("status", "").startswith("200"):
            self.tokens.put(key, (at, request, captured["status"], captured["headers"],
                                  b"".join(chunks)))
        return chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    install_patches()
    run_simple(args.host, args.port, Emulator(), threaded=True,
               request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

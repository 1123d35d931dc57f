"""Tests of scripts/storm.py's own logic (no stack): the expected final states, the keys, and
that its checks catch what they claim to. `python -m unittest -v scripts/test_storm.py`"""

import base64
import hashlib
import hmac
import io
import random
import sys
import unittest
from contextlib import redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import storm  # noqa: E402


def event(event_id, version, tombstone=False, kind="user", entity="u1", actions=(), state=None):
    return storm.Event("user-events", "users", event_id, "user.updated", b"{}", kind, entity,
                       version, tombstone, list(actions), state or {})


class FinalState(unittest.TestCase):
    def test_newest_version_wins_then_the_greater_event_id(self):
        a, b, c = event("m1", 10), event("m2", 30), event("m3", 30)
        self.assertIs(storm.expected_final([b, a, c])[("user", "u1")], c)

    def test_a_tombstone_wins_whatever_its_version(self):
        d = event("m9", 5, tombstone=True)
        final = storm.expected_final([event("m1", 10), d, event("m2", 50)])
        self.assertIs(final[("user", "u1")], d)

    def test_generated_lifecycles_have_distinct_ids_and_ordered_versions(self):
        events = storm.generate(300, random.Random(3), "t")
        self.assertEqual(len(events), 300)
        self.assertEqual(len({(e.source, e.event_id) for e in events}), 300)
        subs = [e for e in events if e.kind == "subscription"]
        self.assertEqual(len({(e.entity, e.version) for e in subs}), len(subs))
        # Every subscription starts with its created event, strictly below its later ones.
        for sub in {e.entity for e in subs}:
            mine = [e for e in subs if e.entity == sub]
            self.assertEqual(mine[0].type, "customer.subscription.created")
            self.assertEqual(mine[0].version, min(e.version for e in mine))


class Keys(unittest.TestCase):
    def test_event_action_and_sync_keys(self):
        self.assertEqual(storm.parse_key("stripe:evt_1:receipt:0"),
                         (("action", "stripe", "evt_1", "receipt"), None, 0))
        self.assertEqual(storm.parse_key("stripe:subscription/sub_1#3:access:2"),
                         (("sync", "subscription", "sub_1", "access"), 3, 2))


class Signing(unittest.TestCase):
    def test_standard_webhooks_keys_with_the_decoded_secret(self):
        e = storm.Event("user-events", "users", "msg_1", "user.created", b'{"a":1}', "user",
                        "u", 0, False, [], {})
        h = storm.sign(e)
        key = base64.b64decode("aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ=")
        want = hmac.new(key, f"msg_1.{h['webhook-timestamp']}.".encode() + b'{"a":1}',
                        hashlib.sha256).digest()
        self.assertEqual(h["webhook-signature"], "v1," + base64.b64encode(want).decode())


class Checks(unittest.TestCase):
    """One user event with one action; the stored state, answers and sink as given."""

    def run_check(self, sink, last_event="m1", status="DONE", answers=("accepted", "duplicate")):
        events = [event("m1", 10, actions=["analytics"], state={"last_name": "A"})]
        outcomes = [storm.Outcome(0, a, ["200"], False) for a in answers]
        stored = {("users", "m1"): {"status": "accepted",
                                    "outbox": {"analytics": {"status": status}}}}
        entities = {("user", "u1"): {"_last_event_id": last_event, "attrs": {"last_name": "A"}}}
        report = storm.Report()
        with redirect_stdout(io.StringIO()):
            storm.check(events, outcomes, stored, entities, sink, report)
        return report.broken

    def post(self, n, status, fault=None, key="users:m1:analytics:0"):
        return {"n": n, "path": "/analytics", "idempotency_key": key, "status": status,
                "fault": fault, "at_ms": n * 2000}

    def test_a_clean_run_holds(self):
        self.assertEqual(self.run_check([self.post(1, 503, "fail-rate"), self.post(2, 200)]), [])

    def test_two_successful_posts_of_one_key_break_it(self):
        broken = self.run_check([self.post(1, 200), self.post(2, 200)])
        self.assertTrue(any("2xx more than once" in b for b in broken), broken)

    def test_a_503_no_fault_explains_breaks_it(self):
        broken = self.run_check([self.post(1, 503), self.post(2, 200)])
        self.assertTrue(any("no injected fault" in b for b in broken), broken)

    def test_an_entity_left_at_an_older_event_breaks_it(self):
        broken = self.run_check([self.post(1, 200)], last_event="m0")
        self.assertTrue(any("newest state" in b for b in broken), broken)

    def test_a_followup_not_done_breaks_it(self):
        broken = self.run_check([], status="FAILED")
        self.assertTrue(any("not DONE" in b for b in broken), broken)

    def test_a_retry_sooner_than_the_backoff_breaks_it(self):
        sink = [self.post(1, 503, "down"), {**self.post(2, 200), "at_ms": 2100}]
        broken = self.run_check(sink)
        self.assertTrue(any("sooner than the backoff" in b for b in broken), broken)

    def test_a_false_duplicate_breaks_it(self):
        broken = self.run_check([self.post(1, 200)], answers=("duplicate", "duplicate"))
        self.assertTrue(any("no delivery accepted" in b for b in broken), broken)

    def test_two_accepted_answers_break_it(self):
        broken = self.run_check([self.post(1, 200)], answers=("accepted", "accepted"))
        self.assertTrue(any("more than once" in b for b in broken), broken)


class Exhausted(unittest.TestCase):
    def test_a_failed_followup_is_explained_only_when_injected_faults_answered_each_attempt(self):
        def post(n, key, fault):
            return {"n": n, "idempotency_key": key, "status": 503, "fault": fault,
                    "at_ms": n * 1500}
        stored = {("users", "m1"): {"outbox": {"analytics": {"status": "FAILED"}}},
                  ("users", "m2"): {"outbox": {"analytics": {"status": "FAILED"}}}}
        sink = [post(1, "users:m1:analytics:0", "down"), post(3, "users:m1:analytics:0", "down"),
                post(2, "users:m2:analytics:0", "down"), post(4, "users:m2:analytics:0", None)]
        explained, other, spans = storm.exhausted(stored, {}, sink)
        self.assertEqual(explained, [("users", "m1", "analytics")])
        self.assertEqual(other, [("users", "m2", "analytics")])
        self.assertEqual(spans, [3.0])


if __name__ == "__main__":
    unittest.main()

"""Tests of scripts/storm.py's own logic (no stack): that it takes its events' effects, the final
states and the signatures from the project's own code (`hookline describe`, `hookline sign`,
built here if need be), and that its checks catch what they claim to.
`python -m unittest -v scripts/test_storm.py`"""

import collections
import io
import random
import sys
import unittest
from contextlib import redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import storm  # noqa: E402


def event(event_id, version, tombstone=False, kind="user", entity="u1", actions=(), attrs=None,
          sync=None):
    return storm.Event("user-events", event_id, "user.updated", b"{}", "users", kind, entity,
                       version, tombstone, [{"kind": a, "guard": g} for a, g in actions],
                       attrs or {}, sync)


def action_followup(event_id, action, generation=0):
    return {"kind": "action", "source": "users", "event_id": event_id, "action": action,
            "generation": generation}


class Project(unittest.TestCase):
    """The storm's expectations come from the `hookline` binary, built once for these tests."""

    @classmethod
    def setUpClass(cls):
        cls.binary = storm.build_hookline()
        cls.events = storm.generate(300, random.Random(3), "t")
        cls.final = storm.describe(cls.binary, cls.events)

    def test_the_mapping_describes_every_generated_event(self):
        self.assertEqual(len(self.events), 300)
        self.assertEqual(len({(e.source, e.event_id) for e in self.events}), 300)
        self.assertEqual({e.source for e in self.events}, {"stripe", "users"})
        for e in self.events:
            self.assertTrue(e.kind and e.entity, e.event_id)
        kinds = collections.Counter(a["kind"] for e in self.events for a in e.actions)
        self.assertTrue({"receipt", "notify_admin", "welcome", "analytics"} <= set(kinds), kinds)
        self.assertTrue(any(e.tombstone for e in self.events))
        # Subscriptions keep a sync of their access; users none.
        self.assertTrue(all(e.sync for e in self.events if e.kind == "subscription"))
        self.assertFalse(any(e.sync for e in self.events if e.kind == "user"))
        # A guarded action names the entity it reads.
        welcome = [a for e in self.events for a in e.actions if a["kind"] == "welcome"]
        self.assertTrue(welcome and all(a["guard"]["guard"] == "unless_deleted" for a in welcome))

    def test_each_entity_ends_at_the_last_event_of_its_generated_lifecycle(self):
        # The generator emits each lifecycle in its order; the store's rule (through
        # `describe --finals`) must agree, same-second subscription changes included.
        last = {}
        for e in self.events:
            last[(e.kind, e.entity)] = e
        self.assertEqual(set(self.final), set(last))
        for key, e in last.items():
            self.assertIs(self.final[key], e, key)

    def test_a_tombstone_is_final_whatever_comes_after_it(self):
        users = [e for e in self.events if e.kind == "user"]
        deleted = next(e for e in users if e.tombstone)
        later = storm.Event("user-events", "msg_zz_later", "user.updated",
                            next(e for e in users if e.entity == deleted.entity
                                 and not e.tombstone).body)
        final = storm.describe(self.binary, [deleted, later])
        self.assertIs(final[("user", deleted.entity)], deleted)

    def test_a_body_the_mapping_refuses_stops_the_storm(self):
        bad = storm.Event("user-events", "msg_bad", "user.updated", b"[1]")
        with self.assertRaises(RuntimeError):
            storm.describe(self.binary, [bad])

    def test_signatures_come_from_the_signer_with_the_functions_scheme(self):
        signer = storm.Signer(self.binary)
        try:
            stripe = next(e for e in self.events if e.source == "stripe")
            user = next(e for e in self.events if e.source == "users")
            headers = {k.lower(): v for k, v in signer.sign(stripe).items()}
            self.assertEqual(headers["content-type"], "application/json")
            self.assertRegex(headers["stripe-signature"], r"^t=\d+,v1=[0-9a-f]{64}$")
            headers = {k.lower(): v for k, v in signer.sign(user).items()}
            self.assertEqual(headers["webhook-id"], user.event_id)
            self.assertTrue(headers["webhook-signature"].startswith("v1,"))
            with self.assertRaises(RuntimeError):
                signer.sign(storm.Event("nope", "x", "t", b"{}"))
        finally:
            signer.close()


class Checks(unittest.TestCase):
    """One user event with one action; the stored state, answers and sink as given."""

    def run_check(self, sink, last_event="m1", status="DONE", answers=("accepted", "duplicate"),
                  guard=None, deleted=False):
        e = event("m1", 10, actions=[("analytics", guard)], attrs={"last_name": "A"})
        outcomes = [storm.Outcome(0, a, ["200"], False) for a in answers]
        stored = {("users", "m1"): {"status": "accepted",
                                    "outbox": {"analytics": {"status": status}}}}
        entities = {("user", "u1"): {"_last_event_id": last_event, "attrs": {"last_name": "A"}},
                    ("user", "u2"): {"_deleted": deleted}}
        report = storm.Report()
        with redirect_stdout(io.StringIO()):
            storm.check([e], {("user", "u1"): e}, outcomes, stored, entities, sink, report)
        return report.broken

    def post(self, n, status, fault=None, key="users:m1:analytics:0", followup=True):
        return {"n": n, "path": "/analytics", "idempotency_key": key, "status": status,
                "fault": fault, "at_ms": n * 2000,
                "followup": action_followup("m1", "analytics") if followup else None}

    def test_a_clean_run_holds(self):
        self.assertEqual(self.run_check([self.post(1, 503, "fail-rate"), self.post(2, 200)]), [])

    def test_a_key_the_sink_could_not_parse_breaks_it(self):
        broken = self.run_check([self.post(1, 200, followup=False)])
        self.assertTrue(any("valid Idempotency-Key" in b for b in broken), broken)

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

    def test_a_skip_is_by_design_only_when_the_declared_guard_holds(self):
        guard = {"guard": "unless_deleted", "kind": "user", "id": "u2"}
        self.assertEqual(self.run_check([], status="SKIPPED", guard=guard, deleted=True), [])
        broken = self.run_check([], status="SKIPPED", guard=guard, deleted=False)
        self.assertTrue(any("not DONE" in b for b in broken), broken)
        broken = self.run_check([], status="SKIPPED")
        self.assertTrue(any("not DONE" in b for b in broken), broken)

    def test_an_attribute_guard_holds_only_on_the_value_it_names(self):
        guard = {"guard": "unless_attr", "entity": {"kind": "invoice", "id": "in_1"},
                 "attr": "payment_status", "equals": "paid", "reason": "invoice paid meanwhile"}
        paid = {("invoice", "in_1"): {"attrs": {"payment_status": "paid"}}}
        failed = {("invoice", "in_1"): {"attrs": {"payment_status": "failed"}}}
        self.assertTrue(storm.guard_holds(guard, paid))
        self.assertFalse(storm.guard_holds(guard, failed))
        self.assertFalse(storm.guard_holds(guard, {}))
        self.assertFalse(storm.guard_holds(None, paid))

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

    def test_an_unsigned_delivery_breaks_it(self):
        broken = self.run_check([self.post(1, 200)], answers=("unsigned", "accepted"))
        self.assertTrue(any("never answered 2xx" in b for b in broken), broken)


class Syncs(unittest.TestCase):
    """A subscription whose final event maps its access sync to `want`."""

    def run_check(self, want, calls):
        sync = {"name": "access", "action": want, "baseline": want == "revoke_access"}
        e = storm.Event("payment-events", "evt_1", "customer.subscription.updated", b"{}",
                        "stripe", "subscription", "sub_1", 1, False, [], {}, sync)
        stored = {("stripe", "evt_1"): {"status": "accepted", "outbox": {}}}
        entities = {("subscription", "sub_1"): {"_last_event_id": "evt_1", "attrs": {},
                                                "sync_status": "DONE"}}
        sink = [{"n": n, "path": f"/{path}", "status": 200, "fault": None, "at_ms": n * 2000,
                 "idempotency_key": f"stripe:subscription/sub_1#{n}:access:0",
                 "followup": {"kind": "sync", "source": "stripe", "entity_kind": "subscription",
                              "entity_id": "sub_1", "action": "access", "seq": n,
                              "generation": 0}}
                for n, path in enumerate(calls, 1)]
        report = storm.Report()
        with redirect_stdout(io.StringIO()):
            storm.check([e], {("subscription", "sub_1"): e}, [storm.Outcome(0, "accepted", ["200"],
                        False)], stored, entities, sink, report)
        return report.broken

    def test_the_last_call_must_be_the_final_states(self):
        self.assertEqual(self.run_check("provision_access", ["provision_access"]), [])
        self.assertEqual(self.run_check("revoke_access", ["provision_access", "revoke_access"]),
                         [])
        broken = self.run_check("revoke_access", ["revoke_access", "provision_access"])
        self.assertTrue(any("last sync call" in b for b in broken), broken)
        broken = self.run_check("provision_access", [])
        self.assertTrue(any("last sync call" in b for b in broken), broken)

    def test_the_baseline_may_never_be_sent(self):
        self.assertEqual(self.run_check("revoke_access", []), [])


class Exhausted(unittest.TestCase):
    def test_a_failed_followup_is_explained_only_when_injected_faults_answered_each_attempt(self):
        def post(n, event_id, fault):
            return {"n": n, "idempotency_key": f"users:{event_id}:analytics:0", "status": 503,
                    "fault": fault, "at_ms": n * 1500,
                    "followup": action_followup(event_id, "analytics")}
        stored = {("users", "m1"): {"outbox": {"analytics": {"status": "FAILED"}}},
                  ("users", "m2"): {"outbox": {"analytics": {"status": "FAILED"}}}}
        sink = [post(1, "m1", "down"), post(3, "m1", "down"),
                post(2, "m2", "down"), post(4, "m2", None)]
        explained, other, spans = storm.exhausted(stored, {}, sink)
        self.assertEqual(explained, [("users", "m1", "analytics")])
        self.assertEqual(other, [("users", "m2", "analytics")])
        self.assertEqual(spans, [3.0])


if __name__ == "__main__":
    unittest.main()

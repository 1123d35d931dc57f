//! Stripe events → (state change, follow-ups). Pure: no I/O.
//!
//! [`describe`] parses the verified body into the typed [`Event`]; [`describe_event`] maps it.
//! The event id is Stripe's `evt_...` (the same on every redelivery), `provider_ts` is
//! `created` in milliseconds.
//!
//! # Entities: one per facet that changes on its own
//!
//! An entity keeps the version of the last event applied, and an event older than that is
//! *stale*: its change is dropped and so are its follow-ups. So two facets that change
//! independently must not share an entity, or a delayed event of one would be made stale by a
//! newer event of the other, losing its state and its follow-ups (a receipt, a provisioning).
//! Stripe emits `customer.subscription.*`, `invoice.paid`, `payment_intent.succeeded` and
//! `checkout.session.completed` for one purchase within a second or two, in no guaranteed order.
//!
//! | entity kind | id | events | attributes |
//! |---|---|---|---|
//! | `subscription` | `sub_...` | `customer.subscription.*` | customer, status, price_id, current_period_end (s), cancel_at_period_end, canceled_at (s) |
//! | `invoice` | `in_...` | `invoice.paid`, `invoice.payment_failed` | customer, payment_status (`paid`/`failed`), invoice_status, amount, currency, subscription, attempt_count |
//! | `payment_intent` | `pi_...` | `payment_intent.*` | customer, payment_status (`succeeded`/`failed`), status, amount, currency, last_error |
//! | `checkout_session` | `cs_...` | `checkout.session.completed`, `checkout.session.async_payment_succeeded`, `checkout.session.async_payment_failed` | customer, subscription, payment_intent, mode, payment_status, amount_total, currency, email |
//!
//! A checkout session is its own entity rather than a write to its subscription: it carries no
//! subscription status, and sharing the subscription's ordering would make a
//! `customer.subscription.created` that arrives after it (same purchase, one second older) stale,
//! leaving the subscription without a status. Invoices and payment intents are separate facets
//! for the same reason (every subscription payment emits both, a second apart, in either order).
//! Invoices and payment intents are keyed by their own ids, not by customer: two invoices of one
//! customer are independent, and keyed by customer the older one's `invoice.paid` arriving late
//! would be stale and its receipt lost. Per object, ordering is what it should be: a
//! `payment_failed` older than the same invoice's `paid` is stale (no state change), and its
//! alert is skipped by its guard (see below).
//!
//! # Versions
//!
//! `created × 1000`, except for subscriptions: Stripe's clock has one-second resolution and a
//! subscription often changes twice within a second (`created` as `incomplete`, then `updated`
//! to `active` once the first payment succeeds). Left to the store's tie-break (the greater event
//! id, i.e. arbitrary) the `incomplete` state would win half the time. The unused millisecond
//! part therefore orders one second's subscription events by lifecycle: `created` (+0) before
//! `updated` (+100 + 10 × status rank, `incomplete` < `trialing` < `active` < `past_due` <
//! `paused` < `unpaid` < `canceled`) before `deleted` (+900). Events in different seconds keep
//! their order.
//!
//! # Follow-ups
//!
//! One entity decides each grant and revoke: access comes only from an entity's *sync*, never
//! from an event action, so no late or retried event can grant what another entity's sync
//! revoked (docs/FOLLOWUPS.md, "One entity decides").
//!
//! | kind | when | payload |
//! |---|---|---|
//! | `access` (sync of the subscription) | every applied `customer.subscription.*` change | to the `provision_access` target while the subscription is `active`/`trialing` (customer, subscription, price_id, status, email null, checkout_session null), to the `revoke_access` target once it is not (customer, subscription, status, ended_at; the baseline); sent only when it differs from what was last sent |
//! | `fulfilment` (sync of a `payment`-mode checkout session) | every applied `checkout.session.*` change of a one-time payment | to the `provision_access` target once the session is paid or needs no payment (customer, subscription null, price_id null, status null, email, checkout_session), whichever of `completed` and `async_payment_succeeded` says so (one state: one POST, one key); to the `revoke_access` target (customer, checkout_session, payment_status; the baseline, so nothing is sent for a session never fulfilled) while it is not |
//! | `receipt` | `invoice.paid` | invoice, number, customer, email, amount_paid, currency, hosted_invoice_url, subscription |
//! | `notify_admin` | `invoice.payment_failed` (guard: skipped once the invoice is `paid`), `payment_intent.payment_failed` (guard: skipped once the payment intent `succeeded`), `checkout.session.async_payment_failed` (final for its session: no guard) | event_type, customer, the object's id, amount, currency, and the failure details |
//!
//! A `subscription`-mode checkout feeds nothing of its own: it carries no subscription status,
//! and the subscription's own events grant and revoke. A `setup`-mode one has nothing to fulfil.
//! Payloads carry only what the target needs, never the body. Targets get an `Idempotency-Key`
//! per event action, and per *state sent* for a sync (`...#<seq>:access:<generation>`): a
//! metadata-only change, or a retry of a POST whose answer was lost, repeats the same key; a
//! revoke and a later re-grant each get a new one.
//!
//! Access is a sync, not an edge: the worker derives it from the subscription's current state,
//! so `created` (active) arriving after a metadata-only `updated`, or a `deleted` overtaking its
//! `created`, still ends with the target holding the subscription's final access state.
//!
//! Alerts are facts about their event (they run even for a stale event), but one about a
//! payment that has since succeeded is pointless: a guard reads the entity when the alert runs,
//! and a late `invoice.payment_failed` for an invoice already paid ends SKIPPED
//! (`invoice paid meanwhile`).

use hookline::model::stripe::{
    CheckoutSession, Event, Invoice, Payload, PaymentIntent, Subscription,
};
use hookline::receiver::Described;
use hookline::store::{Action, ChangeMode, Effects, StateAttrs, StateChange, SyncTarget};
use hookline::verify::{ParseError, Verified};
use serde_json::{Value, json};

/// Entity kind of a subscription's state.
pub const SUBSCRIPTION: &str = "subscription";
/// Entity kind of an invoice's payment state, keyed by invoice id.
pub const INVOICE: &str = "invoice";
/// Entity kind of a payment intent's state, keyed by payment-intent id.
pub const PAYMENT_INTENT: &str = "payment_intent";
/// Entity kind of a completed checkout session.
pub const CHECKOUT_SESSION: &str = "checkout_session";

/// Follow-up: give the customer access.
pub const PROVISION_ACCESS: &str = "provision_access";
/// Follow-up: take the customer's access away.
pub const REVOKE_ACCESS: &str = "revoke_access";
/// Follow-up: send a receipt.
pub const RECEIPT: &str = "receipt";
/// The sync a subscription keeps: access granted (`provision_access` target) or revoked
/// (`revoke_access` target), converging on the subscription's final state.
pub const ACCESS: &str = "access";
/// The sync a one-time payment's checkout session keeps: fulfilled (`provision_access` target)
/// once paid, the baseline (`revoke_access` target, never sent unless a fulfilment was) before.
pub const FULFILMENT: &str = "fulfilment";
/// Follow-up: tell an administrator about a failed payment.
pub const NOTIFY_ADMIN: &str = "notify_admin";
/// Every action kind this mapping emits (event actions, and its syncs' targets): the receiver's
/// [`hookline::receiver::ReceiverSpec::action_kinds`].
pub const ACTION_KINDS: &[&str] = &[RECEIPT, NOTIFY_ADMIN, PROVISION_ACCESS, REVOKE_ACCESS];

/// Parses a verified Stripe delivery and maps it.
pub fn describe(v: &Verified<'_>) -> Result<Described, ParseError> {
    describe_json(v.body())
}

/// Parses a body and maps it: [`describe`] minus the proof of origin.
fn describe_json(body: &[u8]) -> Result<Described, ParseError> {
    let event: Event = serde_json::from_slice(body)?;
    Ok(describe_event(&event))
}

/// Maps a parsed Stripe event to what it means. Total: never panics.
pub fn describe_event(event: &Event) -> Described {
    let ts = event.created.saturating_mul(1000);
    let effects = match &event.payload {
        Payload::CheckoutSessionCompleted(s) | Payload::CheckoutSessionAsyncPaymentSucceeded(s) => {
            checkout_completed(s, ts)
        }
        Payload::CheckoutSessionAsyncPaymentFailed(s) => checkout_failed(event, s, ts),
        Payload::SubscriptionCreated(s) => subscription(s, Stage::Created, ts),
        Payload::SubscriptionUpdated(s) => subscription(s, Stage::Updated, ts),
        Payload::SubscriptionDeleted(s) => subscription(s, Stage::Deleted, ts),
        Payload::InvoicePaid(i) => invoice(event, i, Attempt::Succeeded, ts),
        Payload::InvoicePaymentFailed(i) => invoice(event, i, Attempt::Failed, ts),
        Payload::PaymentIntentSucceeded(p) => payment_intent(event, p, Attempt::Succeeded, ts),
        Payload::PaymentIntentPaymentFailed(p) => payment_intent(event, p, Attempt::Failed, ts),
        Payload::Unhandled => Effects::Ignored,
    };
    Described {
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        provider_ts: ts,
        effects,
        deduplicated: true,
        challenge: None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Created,
    Updated,
    Deleted,
}

/// Millisecond offset ordering one second's events of a subscription (see the module doc).
fn lifecycle_offset(stage: Stage, status: &str) -> i64 {
    let rank = match status {
        "incomplete" => 1,
        "trialing" => 2,
        "active" => 3,
        "past_due" => 4,
        "paused" => 5,
        "unpaid" => 6,
        "canceled" | "incomplete_expired" => 7,
        _ => 0,
    };
    match stage {
        Stage::Created => 0,
        Stage::Updated => 100 + 10 * rank,
        Stage::Deleted => 900,
    }
}

fn attrs<const N: usize>(pairs: [(&str, Value); N]) -> StateAttrs {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn upsert(kind: &str, id: &str, version: i64, attrs: StateAttrs) -> Option<StateChange> {
    Some(StateChange {
        entity_kind: kind.to_owned(),
        entity_id: id.to_owned(),
        version,
        mode: ChangeMode::Upsert,
        attrs,
        sync: None,
    })
}

struct Provision<'a> {
    customer: Option<&'a str>,
    subscription: Option<&'a str>,
    price_id: Option<&'a str>,
    status: Option<&'a str>,
    email: Option<&'a str>,
    checkout_session: Option<&'a str>,
}

impl Provision<'_> {
    fn payload(&self) -> Value {
        json!({
            "customer": self.customer,
            "subscription": self.subscription,
            "price_id": self.price_id,
            "status": self.status,
            "email": self.email,
            "checkout_session": self.checkout_session,
        })
    }
}

/// A delayed payment method (bank debit) failed after `checkout.session.completed` said
/// `unpaid`: nothing is fulfilled, the admin is told. No guard: a session whose delayed payment
/// failed never succeeds later (the customer starts a new session).
fn checkout_failed(event: &Event, s: &CheckoutSession, ts: i64) -> Effects {
    Effects::Apply {
        change: checkout_change(s, ts),
        actions: vec![Action::new(
            NOTIFY_ADMIN,
            json!({
                "event_type": event.event_type,
                "customer": s.customer,
                "email": s.email(),
                "checkout_session": s.id,
                "amount_total": s.amount_total,
                "currency": s.currency,
            }),
        )],
    }
}

/// The checkout session's state change; a one-time payment's (`payment` mode) carries its
/// fulfilment sync.
fn checkout_change(s: &CheckoutSession, ts: i64) -> Option<StateChange> {
    let mut change = upsert(
        CHECKOUT_SESSION,
        &s.id,
        ts,
        attrs([
            ("customer", json!(s.customer)),
            ("subscription", json!(s.subscription)),
            ("payment_intent", json!(s.payment_intent)),
            ("mode", json!(s.mode)),
            ("payment_status", json!(s.payment_status)),
            ("amount_total", json!(s.amount_total)),
            ("currency", json!(s.currency)),
            ("email", json!(s.email())),
        ]),
    );
    if s.mode == "payment"
        && let Some(change) = change.as_mut()
    {
        change.sync = Some(fulfilment(s));
    }
    change
}

/// The fulfilment sync's desired state for a one-time payment's session in this state: fulfilled
/// once paid (or needing no payment), else the baseline (nothing is sent for a session never
/// fulfilled). The payload depends on the session only, not on which event said it was paid, so
/// `completed` (paid) and `async_payment_succeeded` are one state: one POST, one key.
fn fulfilment(s: &CheckoutSession) -> SyncTarget {
    if s.is_fulfillable() {
        SyncTarget {
            name: FULFILMENT.to_owned(),
            action: PROVISION_ACCESS.to_owned(),
            payload: Provision {
                customer: s.customer.as_deref(),
                subscription: None,
                price_id: None,
                status: None,
                email: s.email(),
                checkout_session: Some(&s.id),
            }
            .payload(),
            baseline: false,
        }
    } else {
        SyncTarget {
            name: FULFILMENT.to_owned(),
            action: REVOKE_ACCESS.to_owned(),
            payload: json!({
                "customer": s.customer,
                "checkout_session": s.id,
                "payment_status": s.payment_status,
            }),
            baseline: true,
        }
    }
}

/// `checkout.session.completed`, or `async_payment_succeeded` once a delayed payment cleared:
/// records the session; a one-time payment is fulfilled by the session's own sync, a
/// subscription's access by the subscription's sync. No event action grants anything.
fn checkout_completed(s: &CheckoutSession, ts: i64) -> Effects {
    Effects::Apply {
        change: checkout_change(s, ts),
        actions: Vec::new(),
    }
}

fn subscription(s: &Subscription, stage: Stage, ts: i64) -> Effects {
    let version = ts.saturating_add(lifecycle_offset(stage, &s.status));
    let mut change = upsert(
        SUBSCRIPTION,
        &s.id,
        version,
        attrs([
            ("customer", json!(s.customer)),
            ("status", json!(s.status)),
            ("price_id", json!(s.price_id())),
            ("current_period_end", json!(s.current_period_end())),
            ("cancel_at_period_end", json!(s.cancel_at_period_end)),
            ("canceled_at", json!(s.canceled_at)),
        ]),
    );
    if let Some(change) = change.as_mut() {
        change.sync = Some(access(s));
    }
    Effects::Apply {
        change,
        actions: Vec::new(),
    }
}

/// The access sync's desired state for a subscription in this state: granted (with the details
/// the `provision_access` target needs) while it is active or trialing, else revoked (the
/// baseline: nothing is sent for a subscription that never had access).
fn access(s: &Subscription) -> SyncTarget {
    if s.grants_access() {
        SyncTarget {
            name: ACCESS.to_owned(),
            action: PROVISION_ACCESS.to_owned(),
            payload: Provision {
                customer: Some(&s.customer),
                subscription: Some(&s.id),
                price_id: s.price_id(),
                status: Some(&s.status),
                email: None,
                checkout_session: None,
            }
            .payload(),
            baseline: false,
        }
    } else {
        SyncTarget {
            name: ACCESS.to_owned(),
            action: REVOKE_ACCESS.to_owned(),
            payload: json!({
                "customer": s.customer,
                "subscription": s.id,
                "status": s.status,
                "ended_at": s.ended_at.or(s.canceled_at),
            }),
            baseline: true,
        }
    }
}

/// How the payment attempt an invoice or payment-intent event reports ended: the event type
/// says which (`invoice.paid` / `invoice.payment_failed`, `payment_intent.succeeded` /
/// `payment_intent.payment_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Paid: a receipt for an invoice, nothing to tell for a payment intent.
    Succeeded,
    /// Failed: the admin is told, unless it is paid by the time the alert runs.
    Failed,
}

fn invoice(event: &Event, i: &Invoice, attempt: Attempt, ts: i64) -> Effects {
    let amount = match attempt {
        Attempt::Succeeded => i.amount_paid,
        Attempt::Failed => i.amount_due,
    };
    let payment_status = match attempt {
        Attempt::Succeeded => "paid",
        Attempt::Failed => "failed",
    };
    let change = upsert(
        INVOICE,
        &i.id,
        ts,
        attrs([
            ("customer", json!(i.customer)),
            ("payment_status", json!(payment_status)),
            ("invoice_status", json!(i.status)),
            ("amount", json!(amount)),
            ("currency", json!(i.currency)),
            ("subscription", json!(i.subscription_id())),
            ("attempt_count", json!(i.attempt_count)),
        ]),
    );
    let action = match attempt {
        Attempt::Succeeded => Action::new(
            RECEIPT,
            json!({
                "invoice": i.id,
                "number": i.number,
                "customer": i.customer,
                "email": i.customer_email,
                "amount_paid": i.amount_paid,
                "currency": i.currency,
                "hosted_invoice_url": i.hosted_invoice_url,
                "subscription": i.subscription_id(),
            }),
        ),
        Attempt::Failed => Action::new(
            NOTIFY_ADMIN,
            json!({
                "event_type": event.event_type,
                "customer": i.customer,
                "email": i.customer_email,
                "invoice": i.id,
                "subscription": i.subscription_id(),
                "amount_due": i.amount_due,
                "currency": i.currency,
                "attempt_count": i.attempt_count,
                "next_payment_attempt": i.next_payment_attempt,
                "hosted_invoice_url": i.hosted_invoice_url,
            }),
        )
        .unless_attr(
            INVOICE,
            &i.id,
            "payment_status",
            json!("paid"),
            "invoice paid meanwhile",
        ),
    };
    Effects::Apply {
        change,
        actions: vec![action],
    }
}

fn payment_intent(event: &Event, p: &PaymentIntent, attempt: Attempt, ts: i64) -> Effects {
    let error = p.last_payment_error.as_ref();
    let message = error.and_then(|e| e.message.as_deref());
    let (payment_status, last_error) = match attempt {
        Attempt::Succeeded => ("succeeded", None),
        Attempt::Failed => ("failed", message),
    };
    let change = upsert(
        PAYMENT_INTENT,
        &p.id,
        ts,
        attrs([
            ("customer", json!(p.customer)),
            ("payment_status", json!(payment_status)),
            ("status", json!(p.status)),
            ("amount", json!(p.amount)),
            ("currency", json!(p.currency)),
            ("last_error", json!(last_error)),
        ]),
    );
    let actions = match attempt {
        Attempt::Succeeded => Vec::new(),
        Attempt::Failed => vec![
            Action::new(
                NOTIFY_ADMIN,
                json!({
                    "event_type": event.event_type,
                    "customer": p.customer,
                    "payment_intent": p.id,
                    "amount": p.amount,
                    "currency": p.currency,
                    "message": message,
                    "code": error.and_then(|e| e.code.as_deref()),
                    "decline_code": error.and_then(|e| e.decline_code.as_deref()),
                }),
            )
            .unless_attr(
                PAYMENT_INTENT,
                &p.id,
                "payment_status",
                json!("succeeded"),
                "payment intent succeeded meanwhile",
            ),
        ],
    };
    Effects::Apply { change, actions }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    const CUS: &str = "cus_QhookLine001";
    const SUB: &str = "sub_1PhookLine001";

    fn sample(name: &str) -> &'static str {
        match name {
            "checkout.session.completed" => {
                include_str!("../../../events/payment-events/checkout.session.completed.json")
            }
            "customer.subscription.created" => {
                include_str!("../../../events/payment-events/customer.subscription.created.json")
            }
            "customer.subscription.updated" => {
                include_str!("../../../events/payment-events/customer.subscription.updated.json")
            }
            "customer.subscription.deleted" => {
                include_str!("../../../events/payment-events/customer.subscription.deleted.json")
            }
            "invoice.paid" => include_str!("../../../events/payment-events/invoice.paid.json"),
            "invoice.payment_failed" => {
                include_str!("../../../events/payment-events/invoice.payment_failed.json")
            }
            "payment_intent.succeeded" => {
                include_str!("../../../events/payment-events/payment_intent.succeeded.json")
            }
            "payment_intent.payment_failed" => {
                include_str!("../../../events/payment-events/payment_intent.payment_failed.json")
            }
            "customer.created" => {
                include_str!("../../../events/payment-events/customer.created.json")
            }
            "checkout.session.async_payment_succeeded" => include_str!(
                "../../../events/payment-events/checkout.session.async_payment_succeeded.json"
            ),
            "checkout.session.async_payment_failed" => include_str!(
                "../../../events/payment-events/checkout.session.async_payment_failed.json"
            ),
            other => panic!("no sample {other}"),
        }
    }

    const SAMPLES: [&str; 11] = [
        "customer.created",
        "customer.subscription.created",
        "invoice.paid",
        "payment_intent.succeeded",
        "checkout.session.completed",
        "customer.subscription.updated",
        "invoice.payment_failed",
        "payment_intent.payment_failed",
        "customer.subscription.deleted",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
    ];

    fn value(name: &str) -> Value {
        serde_json::from_str(sample(name)).unwrap()
    }

    fn described(name: &str) -> Described {
        describe_json(sample(name).as_bytes()).unwrap()
    }

    fn from_value(v: &Value) -> Result<Described, ParseError> {
        describe_json(&serde_json::to_vec(v).unwrap())
    }

    fn kinds(d: &Described) -> Vec<&str> {
        d.effects
            .actions()
            .iter()
            .map(|a| a.kind.as_str())
            .collect()
    }

    fn c_sync(d: &Described) -> &SyncTarget {
        change(d).sync.as_ref().expect("the entity keeps a sync")
    }

    fn change(d: &Described) -> &StateChange {
        d.effects.change().expect("a state change")
    }

    /// Expected per sample: event id, created (s), entity (kind, id, version offset ms), actions.
    #[test]
    fn every_sample_maps_to_its_effects() {
        type Row = (
            &'static str,
            &'static str,
            i64,
            Option<(&'static str, &'static str, i64)>,
            &'static [&'static str],
        );
        let table: [Row; 11] = [
            (
                "customer.created",
                "evt_1RaHkL2eHookLine0Cust001",
                1_749_988_800,
                None,
                &[],
            ),
            (
                "customer.subscription.created",
                "evt_1RaHkL2eHookLine0SubCr01",
                1_749_988_801,
                Some((SUBSCRIPTION, SUB, 0)),
                &["sync:provision_access"],
            ),
            (
                "invoice.paid",
                "evt_1RaHkL2eHookLine0InvPd01",
                1_749_988_802,
                Some((INVOICE, "in_1RaHkL2eHookLine0Inv001", 0)),
                &[RECEIPT],
            ),
            (
                "payment_intent.succeeded",
                "evt_3RaHkL2eHookLine0PISuc01",
                1_749_988_802,
                Some((PAYMENT_INTENT, "pi_3RaHkL2eHookLine0PayInt1", 0)),
                &[],
            ),
            (
                "checkout.session.completed",
                "evt_1RaHkL2eHookLine0ChkCm01",
                1_749_988_803,
                Some((
                    CHECKOUT_SESSION,
                    "cs_test_a1HookLine0Checkout0Session0000000000000000000001",
                    0,
                )),
                &[],
            ),
            (
                "customer.subscription.updated",
                "evt_1RdHkL2eHookLine0SubUp01",
                1_750_852_800,
                Some((SUBSCRIPTION, SUB, 130)),
                &["sync:provision_access"],
            ),
            (
                "invoice.payment_failed",
                "evt_1RlHkL2eHookLine0InvFl01",
                1_752_584_401,
                Some((INVOICE, "in_1RlHkL2eHookLine0Inv002", 0)),
                &[NOTIFY_ADMIN],
            ),
            (
                "payment_intent.payment_failed",
                "evt_3RlHkL2eHookLine0PIFal01",
                1_752_584_401,
                Some((PAYMENT_INTENT, "pi_3RlHkL2eHookLine0PayInt2", 0)),
                &[NOTIFY_ADMIN],
            ),
            (
                "customer.subscription.deleted",
                "evt_1RnHkL2eHookLine0SubDl01",
                1_753_189_201,
                Some((SUBSCRIPTION, SUB, 900)),
                &["sync:revoke_access"],
            ),
            (
                "checkout.session.async_payment_succeeded",
                "evt_1RpHkL2eHookLine0AsySc01",
                1_753_189_211,
                Some((
                    CHECKOUT_SESSION,
                    "cs_test_a1HookLine0Checkout0Session0000000000000000000002",
                    0,
                )),
                &["sync:provision_access"],
            ),
            (
                "checkout.session.async_payment_failed",
                "evt_1RpHkL2eHookLine0AsyFl01",
                1_753_189_221,
                Some((
                    CHECKOUT_SESSION,
                    "cs_test_a1HookLine0Checkout0Session0000000000000000000003",
                    0,
                )),
                &[NOTIFY_ADMIN, "sync:revoke_access"],
            ),
        ];
        for (name, id, created, entity, actions) in table {
            let d = described(name);
            assert_eq!(d.event_id, id, "{name}");
            assert_eq!(d.event_type, name);
            assert_eq!(d.provider_ts, created * 1000, "{name}");
            assert_eq!(
                d.effects.is_ignored(),
                entity.is_none() && actions.is_empty(),
                "{name}"
            );
            match (entity, d.effects.change()) {
                (None, None) => {}
                (Some((kind, eid, offset)), Some(c)) => {
                    assert_eq!(
                        (c.entity_kind.as_str(), c.entity_id.as_str()),
                        (kind, eid),
                        "{name}"
                    );
                    assert_eq!(c.version, created * 1000 + offset, "{name}");
                    assert_eq!(c.mode, ChangeMode::Upsert, "{name}");
                    assert!(
                        c.attrs.values().all(|v| !v.is_object() && !v.is_array()),
                        "scalars only: {name}"
                    );
                }
                (want, got) => panic!("{name}: expected {want:?}, got {got:?}"),
            }
            let mut got: Vec<String> = kinds(&d).into_iter().map(str::to_owned).collect();
            if let Some(sync) = d.effects.change().and_then(|c| c.sync.as_ref()) {
                got.push(format!("sync:{}", sync.action));
            }
            assert_eq!(got, actions, "{name}");
        }
        // Every sample file is in the table; sample ids are distinct.
        let mut ids: Vec<String> = SAMPLES.iter().map(|s| described(s).event_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), SAMPLES.len());
    }

    #[test]
    fn samples_walk_through_one_customer_in_time_order() {
        let times: Vec<i64> = SAMPLES.iter().map(|s| described(s).provider_ts).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        for name in SAMPLES {
            let v = value(name);
            assert_eq!(v["object"], "event");
            assert_eq!(v["api_version"], "2025-03-31.basil");
            let customer = v["data"]["object"]["customer"].as_str();
            let customer = customer.or(v["data"]["object"]["id"].as_str());
            assert_eq!(customer, Some(CUS), "{name}");
        }
    }

    #[test]
    fn subscription_attrs_and_provisioning_payload() {
        let d = described("customer.subscription.created");
        let c = change(&d);
        assert_eq!(
            c.attrs,
            attrs([
                ("customer", json!(CUS)),
                ("status", json!("active")),
                ("price_id", json!("price_1PhookLineBasic")),
                ("current_period_end", json!(1_752_580_801)),
                ("cancel_at_period_end", json!(false)),
                ("canceled_at", Value::Null),
            ])
        );
        let sync = |d: &Described| c_sync(d).clone();
        assert_eq!(
            sync(&d),
            SyncTarget {
                name: ACCESS.into(),
                action: PROVISION_ACCESS.into(),
                payload: json!({"customer": CUS, "subscription": SUB,
                    "price_id": "price_1PhookLineBasic", "status": "active", "email": null,
                    "checkout_session": null}),
                baseline: false,
            }
        );
        assert!(
            d.effects.actions().is_empty(),
            "access is a sync, not an event action"
        );
        let up = described("customer.subscription.updated");
        assert_eq!(change(&up).attrs["price_id"], "price_1PhookLinePro00");
        assert_eq!(sync(&up).payload["price_id"], "price_1PhookLinePro00");

        let del = described("customer.subscription.deleted");
        assert_eq!(change(&del).attrs["status"], "canceled");
        assert_eq!(change(&del).attrs["canceled_at"], 1_753_189_201);
        assert_eq!(
            sync(&del),
            SyncTarget {
                name: ACCESS.into(),
                action: REVOKE_ACCESS.into(),
                payload: json!({"customer": CUS, "subscription": SUB, "status": "canceled",
                       "ended_at": 1_753_189_201}),
                baseline: true,
            }
        );
    }

    #[test]
    fn payment_attrs_and_payloads_carry_only_what_the_target_needs() {
        let paid = described("invoice.paid");
        assert_eq!(
            change(&paid).attrs,
            attrs([
                ("customer", json!(CUS)),
                ("payment_status", json!("paid")),
                ("invoice_status", json!("paid")),
                ("amount", json!(1900)),
                ("currency", json!("usd")),
                ("subscription", json!(SUB)),
                ("attempt_count", json!(1)),
            ])
        );
        let receipt = &paid.effects.actions()[0].payload;
        assert_eq!(receipt["email"], "ada.lovelace@example.com");
        assert_eq!(receipt["amount_paid"], 1900);
        assert_eq!(receipt["number"], "HOOKL01-0001");
        assert!(
            receipt["hosted_invoice_url"]
                .as_str()
                .unwrap()
                .starts_with("https://")
        );

        let failed = described("invoice.payment_failed");
        assert_eq!(change(&failed).attrs["payment_status"], "failed");
        assert_eq!(change(&failed).attrs["amount"], 4900);
        let notify = &failed.effects.actions()[0].payload;
        assert_eq!(notify["event_type"], "invoice.payment_failed");
        assert_eq!(notify["attempt_count"], 1);
        assert_eq!(notify["next_payment_attempt"], 1_752_843_601);

        let pi = described("payment_intent.payment_failed");
        assert_eq!(
            change(&pi).attrs["last_error"],
            "Your card has insufficient funds."
        );
        assert_eq!(
            pi.effects.actions()[0].payload,
            json!({"event_type": "payment_intent.payment_failed", "customer": CUS,
                   "payment_intent": "pi_3RlHkL2eHookLine0PayInt2", "amount": 4900,
                   "currency": "usd", "message": "Your card has insufficient funds.",
                   "code": "card_declined", "decline_code": "insufficient_funds"})
        );
        let ok = described("payment_intent.succeeded");
        assert_eq!(change(&ok).attrs["last_error"], Value::Null);

        for name in SAMPLES {
            for a in described(name).effects.actions() {
                let text = a.payload.to_string();
                assert!(text.len() < 512, "{name}: payload is small");
                assert!(!text.contains("client_secret") && !text.contains("_secret_"));
            }
        }
    }

    #[test]
    fn checkout_session_attrs_and_fulfilment() {
        let d = described("checkout.session.completed");
        assert_eq!(change(&d).attrs["subscription"], SUB);
        assert_eq!(change(&d).attrs["email"], "ada.lovelace@example.com");
        assert!(
            d.effects.actions().is_empty() && change(&d).sync.is_none(),
            "a subscription's checkout grants nothing: the subscription's sync does"
        );
        // Only a one-time payment is fulfilled, by the session's own sync, never by an action.
        for (status, mode, fulfils) in [
            ("paid", "payment", Some(true)),
            ("no_payment_required", "payment", Some(true)),
            ("unpaid", "payment", Some(false)),
            ("paid", "subscription", None),
            ("no_payment_required", "subscription", None),
            ("unpaid", "subscription", None),
            ("no_payment_required", "setup", None),
        ] {
            for name in [
                "checkout.session.completed",
                "checkout.session.async_payment_succeeded",
            ] {
                let mut v = value(name);
                v["data"]["object"]["payment_status"] = status.into();
                v["data"]["object"]["mode"] = mode.into();
                let d = from_value(&v).unwrap();
                assert!(d.effects.actions().is_empty(), "{name} {status} {mode}");
                let sync = change(&d).sync.as_ref();
                assert_eq!(sync.map(|s| !s.baseline), fulfils, "{name} {status} {mode}");
                if let Some(s) = sync {
                    assert_eq!(s.name, FULFILMENT);
                    let action = if s.baseline {
                        REVOKE_ACCESS
                    } else {
                        PROVISION_ACCESS
                    };
                    assert_eq!(s.action, action);
                }
            }
        }
        // Whichever event says the session is paid, the desired state is the same: one POST,
        // one key.
        let paid = |name: &str| {
            let mut v = value(name);
            v["data"]["object"] =
                value("checkout.session.async_payment_succeeded")["data"]["object"].clone();
            c_sync(&from_value(&v).unwrap()).clone()
        };
        let fulfilled = paid("checkout.session.completed");
        assert_eq!(fulfilled, paid("checkout.session.async_payment_succeeded"));
        assert_eq!(
            fulfilled.payload,
            json!({"customer": CUS, "subscription": null, "price_id": null, "status": null,
                   "email": "ada.lovelace@example.com",
                   "checkout_session": "cs_test_a1HookLine0Checkout0Session0000000000000000000002"})
        );
    }

    #[test]
    fn failure_alerts_are_guarded_by_the_payment_succeeding_later() {
        use hookline::store::{EntityRef, Guard};
        let guard = |name: &str| described(name).effects.actions()[0].guard.clone();
        assert_eq!(
            guard("invoice.payment_failed"),
            Some(Guard::UnlessAttr {
                entity: EntityRef {
                    kind: INVOICE.into(),
                    id: "in_1RlHkL2eHookLine0Inv002".into()
                },
                attr: "payment_status".into(),
                equals: json!("paid"),
                reason: "invoice paid meanwhile".into(),
            })
        );
        // The guard's attribute is the one `invoice.paid` writes.
        let mut v = value("invoice.paid");
        v["data"]["object"]["id"] = "in_1RlHkL2eHookLine0Inv002".into();
        assert_eq!(
            change(&from_value(&v).unwrap()).attrs["payment_status"],
            "paid"
        );
        match guard("payment_intent.payment_failed") {
            Some(Guard::UnlessAttr {
                entity,
                attr,
                equals,
                ..
            }) => {
                assert_eq!(entity.kind, PAYMENT_INTENT);
                assert_eq!(
                    change(&described("payment_intent.succeeded")).attrs[attr.as_str()],
                    equals
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(guard("checkout.session.async_payment_failed"), None);
        assert_eq!(guard("invoice.paid"), None);
    }

    #[test]
    fn unknown_type_is_ignored_with_its_identity() {
        let d = described("customer.created");
        assert_eq!(d.event_id, "evt_1RaHkL2eHookLine0Cust001");
        assert_eq!(d.event_type, "customer.created");
        assert_eq!(d.provider_ts, 1_749_988_800_000);
        assert_eq!(d.effects, Effects::Ignored);
        let mut v = value("invoice.paid");
        v["type"] = "radar.early_fraud_warning.created".into();
        assert!(from_value(&v).unwrap().effects.is_ignored());
    }

    #[test]
    fn missing_customer_still_records_state_and_runs_follow_ups() {
        for (name, actions) in [
            ("payment_intent.payment_failed", &[NOTIFY_ADMIN][..]),
            ("payment_intent.succeeded", &[][..]),
            ("invoice.paid", &[RECEIPT][..]),
        ] {
            for customer in [Value::Null, json!("__absent__")] {
                let mut v = value(name);
                let obj = v["data"]["object"].as_object_mut().unwrap();
                if customer == "__absent__" {
                    obj.remove("customer");
                } else {
                    obj.insert("customer".into(), customer);
                }
                let d = from_value(&v).unwrap();
                assert_eq!(change(&d).attrs["customer"], Value::Null, "{name}");
                assert!(!d.effects.is_ignored());
                assert_eq!(kinds(&d), actions, "{name}");
            }
        }
    }

    #[test]
    fn legacy_api_shapes_and_expanded_ids_map_the_same() {
        // Before 2025-03-31.basil: period end on the subscription, subscription on the invoice.
        let mut v = value("customer.subscription.created");
        v["api_version"] = "2024-06-20".into();
        let obj = &mut v["data"]["object"];
        obj["current_period_end"] = obj["items"]["data"][0]["current_period_end"].clone();
        obj["items"]["data"][0]
            .as_object_mut()
            .unwrap()
            .remove("current_period_end");
        obj["customer"] = json!({"id": CUS, "object": "customer", "email": "x@example.com"});
        assert_eq!(
            from_value(&v).unwrap().effects,
            described("customer.subscription.created").effects
        );

        let mut v = value("invoice.paid");
        let obj = v["data"]["object"].as_object_mut().unwrap();
        obj.remove("parent");
        obj.insert(
            "subscription".into(),
            json!({"id": SUB, "object": "subscription"}),
        );
        assert_eq!(
            from_value(&v).unwrap().effects,
            described("invoice.paid").effects
        );
    }

    #[test]
    fn one_seconds_subscription_events_are_ordered_by_lifecycle() {
        let at = |name: &str, status: &str| {
            let mut v = value(name);
            v["created"] = 1_750_000_000.into();
            v["data"]["object"]["status"] = status.into();
            change(&from_value(&v).unwrap()).version
        };
        let created = at("customer.subscription.created", "incomplete");
        let trialing = at("customer.subscription.updated", "trialing");
        let active = at("customer.subscription.updated", "active");
        let past_due = at("customer.subscription.updated", "past_due");
        let deleted = at("customer.subscription.deleted", "canceled");
        assert!(created < trialing && trialing < active && active < past_due && past_due < deleted);
        assert!(deleted < 1_750_000_001_000, "never past the next second");
        // The next second's creation is still newer than this second's deletion.
        let mut v = value("customer.subscription.created");
        v["created"] = 1_750_000_001.into();
        assert!(change(&from_value(&v).unwrap()).version > deleted);
    }

    #[test]
    fn the_access_sync_follows_the_subscription_status_whatever_changed() {
        let desired = |stage: &str, status: &str| {
            let mut v = value(&format!("customer.subscription.{stage}"));
            v["data"]["object"]["status"] = status.into();
            // A metadata-only update: access is derived from the state, not from the change.
            v["data"]["previous_attributes"] = json!({"metadata": {}});
            let d = from_value(&v).unwrap();
            assert!(d.effects.actions().is_empty());
            let s = c_sync(&d);
            (s.action.clone(), s.baseline)
        };
        let grant = (PROVISION_ACCESS.to_owned(), false);
        let revoke = (REVOKE_ACCESS.to_owned(), true);
        assert_eq!(desired("created", "active"), grant);
        assert_eq!(desired("created", "trialing"), grant);
        assert_eq!(desired("updated", "active"), grant);
        assert_eq!(desired("created", "incomplete"), revoke);
        assert_eq!(desired("updated", "past_due"), revoke);
        assert_eq!(desired("updated", "unpaid"), revoke);
        assert_eq!(desired("deleted", "canceled"), revoke);
    }

    #[test]
    fn garbage_and_wrong_shapes_are_parse_errors() {
        let bodies: &[&[u8]] = &[
            b"",
            b"\xff\xfe not json",
            b"null",
            b"[]",
            b"{}",
            br#"{"id":"evt_bad","type":42}"#,
            br#"{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":{"id":"in_1"}}}"#,
            br#"{"id":"evt_1","type":"invoice.paid","created":1,"data":{}}"#,
            br#"{"id":"evt_1","type":"invoice.paid","created":1}"#,
            br#"{"id":"evt_1","type":"invoice.paid","created":1.5,"data":{"object":{}}}"#,
        ];
        for body in bodies {
            assert!(
                describe_json(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for (name, field, bad) in [
            ("customer.subscription.updated", "status", json!(3)),
            (
                "customer.subscription.created",
                "customer",
                json!({"object": "customer"}),
            ),
            ("customer.subscription.deleted", "items", json!("si_1")),
            ("invoice.paid", "amount_paid", json!("1900")),
            ("invoice.payment_failed", "currency", Value::Null),
            ("payment_intent.succeeded", "amount", json!(-1.5)),
            (
                "payment_intent.payment_failed",
                "last_payment_error",
                json!("declined"),
            ),
            ("checkout.session.completed", "payment_status", Value::Null),
        ] {
            let mut v = value(name);
            v["data"]["object"][field] = bad;
            assert!(from_value(&v).is_err(), "{name}.{field}");
        }
    }

    #[test]
    fn extreme_times_saturate() {
        let mut v = value("customer.subscription.deleted");
        v["created"] = i64::MAX.into();
        let d = from_value(&v).unwrap();
        assert_eq!((d.provider_ts, change(&d).version), (i64::MAX, i64::MAX));
        v["created"] = i64::MIN.into();
        assert_eq!(from_value(&v).unwrap().provider_ts, i64::MIN);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z_]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any field of any sample replaced by any JSON: an answer, never a panic.
        #[test]
        fn never_panics_on_mutated_samples(
            which in 0..SAMPLES.len(),
            field in "[a-z_]{1,24}",
            in_object in any::<bool>(),
            replacement in json_value(),
        ) {
            let mut v = value(SAMPLES[which]);
            let target = if in_object { &mut v["data"]["object"] } else { &mut v };
            if let Some(obj) = target.as_object_mut() {
                let key = obj.keys().find(|k| k.starts_with(&field[..1])).cloned().unwrap_or(field);
                obj.insert(key, replacement);
            }
            let _ = from_value(&v);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = describe_json(&body);
        }
    }
}

//! Shopify order and app webhooks → (state change, follow-ups). Pure: no I/O.
//!
//! Shopify signs only the body (`X-Shopify-Hmac-Sha256`, no timestamp): `X-Shopify-Webhook-Id`,
//! `X-Shopify-Topic` and `X-Shopify-Shop-Domain` are not covered by the signature, and anyone who
//! captured one delivery can resend its body with other headers. So:
//!
//! - **The key** is the topic plus the body's SHA-256 (`orders/paid:<hex>`), never the webhook id:
//!   Shopify's retries resend the same body, and a captured body resent under a new webhook id is
//!   a duplicate. A topic this receiver does not handle is keyed `other:<hex>` (recorded as
//!   `ignored` when the body is JSON), so relabelling one captured body mints at most seven records, never more.
//! - **Decisions follow the body's own state** (`financial_status`, `cancelled_at`,
//!   `fulfillment_status`, `updated_at`), never the topic alone: the topic only chooses the model
//!   (order or shop) and says which delivery is *the* cancellation (below). An `orders/create` body
//!   of an unpaid order resent as `orders/paid` is the same unpaid state: nothing is fulfilled.
//! - **The shop** comes from the body or nowhere: Shopify's order ids are unique across shops, so
//!   the `order` entity is keyed by the order's id alone, and the unsigned `X-Shopify-Shop-Domain`
//!   (which one app secret signs for every shop, so a captured body verifies under any shop's
//!   header) is in no key, decision or payload. `app/uninstalled`'s body *is* the shop.
//! - The delivery headers (webhook id, topic) are kept on the event record and used again by
//!   `hookline events replay`.
//!
//! | topic | entity (id) | version | follow-ups |
//! |---|---|---|---|
//! | `orders/create`, `orders/updated`, `orders/paid`, `orders/fulfilled` | `order` (order id): financial_status, fulfillment_status, cancelled, cancelled_at, cancel_reason, name, total_price, currency, updated_at | `updated_at` + lifecycle offset | the order's `fulfilment` sync |
//! | `orders/cancelled` | `order`, as above | as above | the `fulfilment` sync; `notify_admin` when the body is cancelled (guard: skipped unless the order is still recorded cancelled when it runs) |
//! | `app/uninstalled` | `shop` (shop id): myshopify_domain, domain, installed (false), updated_at | the shop's `updated_at` (0 if none) | the shop's `cleanup` sync (`cleanup_shop` target) |
//! | any other topic | — (`ignored`) | — | — |
//!
//! # Follow-ups
//!
//! - **`fulfilment`**, a sync of the order, is the one path that fulfils (docs/FOLLOWUPS.md, "One
//!   entity decides"): paid (`paid`, or `partially_refunded` since) and not cancelled → the
//!   `fulfil_order` target (order id, GraphQL id, name, line items: id, variant, SKU, quantity);
//!   anything else → the `cancel_fulfilment` target (order id, GraphQL id, name), the baseline (nothing is sent for an order
//!   never fulfilled; an order cancelled or refunded after its fulfilment was sent gets it). The
//!   payload depends on the order's state only, so `orders/paid`, `orders/updated` and
//!   `orders/fulfilled` of one paid order are one state: one POST, one key. `fulfillment_status`
//!   is recorded but changes nothing: an order Shopify shows fulfilled stays fulfilled here.
//! - **`notify_admin`** on a cancellation is a fact about that delivery: only `orders/cancelled`
//!   whose body has `cancelled_at` emits it (Shopify also sends `orders/updated` for the same
//!   cancellation: one notice, not two). Its guard reads the order when it runs and skips it
//!   (`order not cancelled`) unless the order is recorded cancelled then. Residual risk: a
//!   captured `orders/updated` body of a cancelled order resent as `orders/cancelled` is a new key
//!   and notifies once more; its payload carries the order id and `cancelled_at`, by which a
//!   target can recognise the repeat.
//! - **`cleanup`**, a sync of the shop, sends `cleanup_shop` (shop id, domain, the shop's
//!   `updated_at`) once per uninstall. It is a sync rather than an event action so that a
//!   captured `app/uninstalled` body resent after its event record expired is *stale* against the
//!   shop entity (which never expires) and cleans nothing up again; a later genuine uninstall has
//!   a newer `updated_at`, a new state and a new POST.
//!
//! # Ordering and `provider_ts`
//!
//! An order's version is its `updated_at` in milliseconds (Shopify sets it, and a redelivery
//! carries the same), never a delivery time. `updated_at` has whole seconds, and one checkout
//! often changes an order twice in a second, so the unused millisecond part orders one second's
//! states by lifecycle: `financial_status` rank × 10 (pending 1, authorized 2, partially_paid 3,
//! paid 4, partially_refunded 5, refunded 6, voided / expired 7) + `fulfillment_status` rank ×
//! 100 (partial 1, fulfilled 2, restocked 3) + 900 once cancelled. Any arrival order of create →
//! paid → fulfilled / cancelled ends on the last state.
//!
//! `provider_ts` is the order's `updated_at`: Shopify sets it in the signed body when it sends the
//! change, so the shared receiver rejects a body older than the retention window (a captured
//! delivery replayed after its record expired). That cannot stop a replay *inside* the window
//! (it is a duplicate then, or stale), nor tell apart two genuine deliveries of one identical body.
//! `app/uninstalled` has no time Shopify sets at the uninstall (the shop's `updated_at` can be
//! months old), so its `provider_ts` is 0 and the shop entity's ordering is its replay defence.

use hookline::model::users::rfc3339_millis;
use hookline::receiver::Described;
use hookline::store::{Action, ChangeMode, Effects, StateAttrs, StateChange, SyncTarget};
use hookline::verify::{ParseError, Verified};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::model::{Order, Shop, Topic};

/// Entity kind of an order's state, keyed by the order id.
pub const ORDER: &str = "order";
/// Entity kind of a shop that uninstalled the app, keyed by the shop id.
pub const SHOP: &str = "shop";
/// The sync an order keeps: fulfilled (`fulfil_order`) while paid and not cancelled.
pub const FULFILMENT: &str = "fulfilment";
/// The sync a shop keeps once it uninstalled the app.
pub const CLEANUP: &str = "cleanup";

/// Follow-up: fulfil a paid order.
pub const FULFIL_ORDER: &str = "fulfil_order";
/// Follow-up (the fulfilment's baseline): take back a fulfilment sent for an order cancelled or
/// refunded since.
pub const CANCEL_FULFILMENT: &str = "cancel_fulfilment";
/// Follow-up: tell an administrator (here: an order was cancelled).
pub const NOTIFY_ADMIN: &str = "notify_admin";
/// Follow-up: delete what the app keeps about a shop that uninstalled it.
pub const CLEANUP_SHOP: &str = "cleanup_shop";
/// Every action kind this mapping emits (event actions, and its syncs' targets).
pub const ACTION_KINDS: &[&str] = &[FULFIL_ORDER, CANCEL_FULFILMENT, NOTIFY_ADMIN, CLEANUP_SHOP];

/// Parses a verified Shopify delivery and maps it; the topic is the `X-Shopify-Topic` header.
pub fn describe(v: &Verified<'_>) -> Result<Described, ParseError> {
    let topic = v
        .meta()
        .event_type
        .as_deref()
        .ok_or_else(|| ParseError::missing("X-Shopify-Topic header"))?;
    describe_body(topic, v.body())
}

/// [`describe`] minus the proof of origin: the topic header's value and the raw body.
pub fn describe_body(topic: &str, body: &[u8]) -> Result<Described, ParseError> {
    let digest = hex::encode(Sha256::digest(body));
    let Some(known) = Topic::parse(topic) else {
        // Not ours to read, but still a JSON document (a cut body is quarantined, not ignored).
        let _: serde::de::IgnoredAny = serde_json::from_slice(body)?;
        return Ok(Described::new(
            format!("other:{digest}"),
            topic.to_owned(),
            0,
            Effects::Ignored,
        ));
    };
    let event_id = format!("{}:{digest}", known.as_str());
    let (provider_ts, effects) = if known.is_order() {
        let order: Order = serde_json::from_slice(body)?;
        let updated = rfc3339_millis(&order.updated_at)
            .ok_or_else(|| ParseError::missing("an RFC 3339 order updated_at"))?;
        (updated, order_effects(known, &order, updated))
    } else {
        let shop: Shop = serde_json::from_slice(body)?;
        (0, uninstalled(&shop))
    };
    Ok(Described::new(
        event_id,
        known.as_str().to_owned(),
        provider_ts,
        effects,
    ))
}

fn attrs<const N: usize>(pairs: [(&str, Value); N]) -> StateAttrs {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The millisecond offset ordering one second's states of an order (see the module doc).
pub fn lifecycle_offset(order: &Order) -> i64 {
    if order.cancelled_at.is_some() {
        return 900;
    }
    let financial = match order.financial_status.as_deref() {
        Some("pending") => 1,
        Some("authorized") => 2,
        Some("partially_paid") => 3,
        Some("paid") => 4,
        Some("partially_refunded") => 5,
        Some("refunded") => 6,
        Some("voided" | "expired") => 7,
        _ => 0,
    };
    let fulfilment = match order.fulfillment_status.as_deref() {
        Some("partial") => 1,
        Some("fulfilled") => 2,
        Some("restocked") => 3,
        _ => 0,
    };
    fulfilment * 100 + financial * 10
}

fn order_effects(topic: Topic, o: &Order, updated_ms: i64) -> Effects {
    let id = o.id.to_string();
    let change = StateChange {
        entity_kind: ORDER.to_owned(),
        entity_id: id.clone(),
        version: updated_ms.saturating_add(lifecycle_offset(o)),
        mode: ChangeMode::Upsert,
        attrs: attrs([
            ("name", json!(o.name)),
            ("financial_status", json!(o.financial_status)),
            ("fulfillment_status", json!(o.fulfillment_status)),
            ("cancelled", json!(o.cancelled_at.is_some())),
            ("cancelled_at", json!(o.cancelled_at)),
            ("cancel_reason", json!(o.cancel_reason)),
            ("total_price", json!(o.total_price)),
            ("currency", json!(o.currency)),
            ("updated_at", json!(updated_ms)),
        ]),
        sync: Some(fulfilment(o)),
    };
    let mut actions = Vec::new();
    if topic == Topic::OrdersCancelled && o.cancelled_at.is_some() {
        actions.push(
            Action::new(
                NOTIFY_ADMIN,
                json!({
                    "event_type": topic.as_str(),
                    "order_id": id,
                    "name": o.name,
                    "cancelled_at": o.cancelled_at,
                    "cancel_reason": o.cancel_reason,
                    "financial_status": o.financial_status,
                    "total_price": o.total_price,
                    "currency": o.currency,
                }),
            )
            .unless_attr(ORDER, &id, "cancelled", json!(false), "order not cancelled"),
        );
    }
    Effects::Apply {
        change: Some(change),
        actions,
    }
}

/// The fulfilment sync's desired state for an order in this state (see the module doc).
fn fulfilment(o: &Order) -> SyncTarget {
    if o.is_fulfillable() {
        let lines: Vec<Value> = o
            .line_items
            .iter()
            .map(|l| json!({"id": l.id, "variant_id": l.variant_id, "sku": l.sku, "quantity": l.quantity}))
            .collect();
        SyncTarget {
            name: FULFILMENT.to_owned(),
            action: FULFIL_ORDER.to_owned(),
            payload: json!({
                "order_id": o.id.to_string(),
                "admin_graphql_api_id": o.admin_graphql_api_id,
                "name": o.name,
                "line_items": lines,
            }),
            baseline: false,
        }
    } else {
        SyncTarget {
            name: FULFILMENT.to_owned(),
            action: CANCEL_FULFILMENT.to_owned(),
            payload: json!({
                "order_id": o.id.to_string(),
                "admin_graphql_api_id": o.admin_graphql_api_id,
                "name": o.name,
            }),
            baseline: true,
        }
    }
}

fn uninstalled(s: &Shop) -> Effects {
    let id = s.id.to_string();
    let updated = s.updated_at.as_deref().and_then(rfc3339_millis);
    Effects::Apply {
        change: Some(StateChange {
            entity_kind: SHOP.to_owned(),
            entity_id: id.clone(),
            version: updated.unwrap_or(0),
            mode: ChangeMode::Upsert,
            attrs: attrs([
                ("myshopify_domain", json!(s.myshopify_domain)),
                ("domain", json!(s.domain)),
                ("installed", json!(false)),
                ("updated_at", json!(updated)),
            ]),
            sync: Some(SyncTarget {
                name: CLEANUP.to_owned(),
                action: CLEANUP_SHOP.to_owned(),
                payload: json!({
                    "shop_id": id,
                    "myshopify_domain": s.myshopify_domain,
                    "updated_at": updated,
                }),
                baseline: false,
            }),
        }),
        actions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use hookline::clock::FixedClock;
    use hookline::secret::{Secret, Secrets};
    use hookline::verify::{Incoming, Scheme, SignInput, Verifier};
    use proptest::prelude::*;

    const ORDER_ID: &str = "5932157812802";

    fn sample(name: &str) -> &'static str {
        match name {
            "orders/create" => include_str!("../../../events/order-events/orders.create.json"),
            "orders/paid" => include_str!("../../../events/order-events/orders.paid.json"),
            "orders/updated" => include_str!("../../../events/order-events/orders.updated.json"),
            "orders/fulfilled" => {
                include_str!("../../../events/order-events/orders.fulfilled.json")
            }
            "orders/cancelled" => {
                include_str!("../../../events/order-events/orders.cancelled.json")
            }
            "app/uninstalled" => include_str!("../../../events/order-events/app.uninstalled.json"),
            "products/update" => include_str!("../../../events/order-events/products.update.json"),
            other => panic!("no sample {other}"),
        }
    }

    fn value(name: &str) -> Value {
        serde_json::from_str(sample(name)).unwrap()
    }

    fn described(topic: &str) -> Described {
        describe_body(topic, sample(topic).as_bytes()).unwrap()
    }

    fn with(topic: &str, v: &Value) -> Described {
        describe_body(topic, &serde_json::to_vec(v).unwrap()).unwrap()
    }

    fn change(d: &Described) -> &StateChange {
        d.effects.change().expect("a state change")
    }

    fn sync(d: &Described) -> &SyncTarget {
        change(d).sync.as_ref().expect("a sync")
    }

    fn kinds(d: &Described) -> Vec<&str> {
        d.effects
            .actions()
            .iter()
            .map(|a| a.kind.as_str())
            .collect()
    }

    fn digest(body: &str) -> String {
        hex::encode(Sha256::digest(body.as_bytes()))
    }

    #[test]
    fn orders_create_of_a_pending_order_records_it_and_fulfils_nothing() {
        let d = described("orders/create");
        assert_eq!(
            d.event_id,
            format!("orders/create:{}", digest(sample("orders/create")))
        );
        assert_eq!(d.event_type, "orders/create");
        // 2026-12-01T09:14:03-05:00
        assert_eq!(d.provider_ts, 1_796_134_443_000);
        let c = change(&d);
        assert_eq!(
            (c.entity_kind.as_str(), c.entity_id.as_str()),
            (ORDER, ORDER_ID)
        );
        assert_eq!(c.version, d.provider_ts + 10, "pending: rank 1");
        assert_eq!(c.attrs["financial_status"], "pending");
        assert_eq!(c.attrs["cancelled"], false);
        let s = sync(&d);
        assert_eq!((s.action.as_str(), s.baseline), (CANCEL_FULFILMENT, true));
        assert!(kinds(&d).is_empty());
    }

    #[test]
    fn orders_paid_fulfils_through_the_order_sync() {
        let d = described("orders/paid");
        let s = sync(&d);
        assert_eq!(s.name, FULFILMENT);
        assert_eq!((s.action.as_str(), s.baseline), (FULFIL_ORDER, false));
        assert_eq!(
            s.payload,
            json!({
                "order_id": ORDER_ID,
                "admin_graphql_api_id": "gid://shopify/Order/5932157812802",
                "name": "#1042",
                "line_items": [
                    {"id": 14_890_321_985_602_u64, "variant_id": 46_622_318_428_226_u64, "sku": "HKL-NB-A5", "quantity": 2},
                    {"id": 14_890_321_985_603_u64, "variant_id": 46_622_318_461_000_u64, "sku": "HKL-BM-SET", "quantity": 1},
                ],
            })
        );
        assert!(kinds(&d).is_empty(), "no event action fulfils");
    }

    #[test]
    fn one_paid_state_is_one_desired_state_whatever_the_topic() {
        let paid = sync(&described("orders/paid")).clone();
        assert_eq!(sync(&described("orders/updated")), &paid);
        assert_eq!(sync(&described("orders/fulfilled")), &paid);
    }

    #[test]
    fn an_unpaid_body_resent_as_orders_paid_does_not_fulfil() {
        let body = sample("orders/create");
        let d = describe_body("orders/paid", body.as_bytes()).unwrap();
        assert_eq!(d.event_id, format!("orders/paid:{}", digest(body)));
        let s = sync(&d);
        assert_eq!((s.action.as_str(), s.baseline), (CANCEL_FULFILMENT, true));
        // The same state as its genuine delivery: same version, same attributes.
        assert_eq!(
            change(&d).version,
            change(&described("orders/create")).version
        );
        assert_eq!(change(&d).attrs, change(&described("orders/create")).attrs);
    }

    #[test]
    fn a_body_resent_under_a_new_webhook_id_has_the_same_key() {
        // The webhook id is not an input: the key is the topic and the body.
        let a = described("orders/paid");
        let b = describe_body("orders/paid", sample("orders/paid").as_bytes()).unwrap();
        assert_eq!(a.event_id, b.event_id);
        // One byte more is another body.
        let c = describe_body(
            "orders/paid",
            format!("{} ", sample("orders/paid")).as_bytes(),
        )
        .unwrap();
        assert_ne!(a.event_id, c.event_id);
    }

    #[test]
    fn orders_cancelled_notifies_under_a_guard_and_takes_the_fulfilment_back() {
        let d = described("orders/cancelled");
        let c = change(&d);
        assert_eq!(c.attrs["cancelled"], true);
        assert_eq!(c.attrs["cancel_reason"], "customer");
        let s = sync(&d);
        assert_eq!((s.action.as_str(), s.baseline), (CANCEL_FULFILMENT, true));
        assert_eq!(kinds(&d), [NOTIFY_ADMIN]);
        let a = &d.effects.actions()[0];
        assert_eq!(a.payload["order_id"], ORDER_ID);
        assert_eq!(a.payload["cancelled_at"], "2026-12-01T12:30:00-05:00");
        let guard = a.guard.as_ref().expect("guarded");
        assert_eq!(guard.entity().kind, ORDER);
        assert_eq!(guard.entity().id, ORDER_ID);
        // Run against the order as it is when the notice runs.
        let record = |cancelled: bool| hookline::store::EntityRecord {
            kind: ORDER.to_owned(),
            id: ORDER_ID.to_owned(),
            version: 0,
            last_event_id: String::new(),
            deleted: false,
            attrs: [("cancelled".to_owned(), json!(cancelled))].into(),
            sync: None,
        };
        assert_eq!(guard.fails(Some(&record(true))), None);
        assert_eq!(
            guard.fails(Some(&record(false))).as_deref(),
            Some("order not cancelled")
        );
    }

    #[test]
    fn a_cancellation_is_notified_once_not_by_every_topic_that_shows_it() {
        let body = value("orders/cancelled");
        assert!(kinds(&with("orders/updated", &body)).is_empty());
        // orders/cancelled whose body is not cancelled (a relabelled body): no notice.
        assert!(kinds(&with("orders/cancelled", &value("orders/paid"))).is_empty());
    }

    #[test]
    fn orders_ordered_by_updated_at_then_by_lifecycle_within_a_second() {
        let versions: Vec<i64> = [
            "orders/create",
            "orders/paid",
            "orders/updated",
            "orders/fulfilled",
            "orders/cancelled",
        ]
        .iter()
        .map(|t| change(&described(t)).version)
        .collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        // Same second: pending < paid < fulfilled < cancelled.
        let mut v = value("orders/create");
        v["updated_at"] = "2026-12-01T09:14:03-05:00".into();
        let pending = change(&with("orders/create", &v)).version;
        v["financial_status"] = "paid".into();
        let paid = change(&with("orders/paid", &v)).version;
        v["fulfillment_status"] = "fulfilled".into();
        let fulfilled = change(&with("orders/fulfilled", &v)).version;
        v["cancelled_at"] = "2026-12-01T09:14:03-05:00".into();
        let cancelled = change(&with("orders/cancelled", &v)).version;
        assert!(pending < paid && paid < fulfilled && fulfilled < cancelled);
        assert!(cancelled - pending < 1000, "inside the second");
    }

    #[test]
    fn refunded_or_cancelled_orders_are_not_fulfillable() {
        for (status, cancelled, fulfil) in [
            ("paid", false, true),
            ("partially_refunded", false, true),
            ("paid", true, false),
            ("refunded", false, false),
            ("authorized", false, false),
            ("partially_paid", false, false),
            ("voided", false, false),
        ] {
            let mut v = value("orders/paid");
            v["financial_status"] = status.into();
            if cancelled {
                v["cancelled_at"] = "2026-12-01T10:00:00-05:00".into();
            }
            let s = sync(&with("orders/updated", &v)).clone();
            assert_eq!(s.action == FULFIL_ORDER, fulfil, "{status} {cancelled}");
            assert_eq!(s.baseline, !fulfil);
        }
    }

    #[test]
    fn app_uninstalled_cleans_up_through_the_shop_sync() {
        let d = described("app/uninstalled");
        assert_eq!(d.event_type, "app/uninstalled");
        assert_eq!(d.provider_ts, 0, "no time set at the uninstall");
        let c = change(&d);
        assert_eq!(
            (c.entity_kind.as_str(), c.entity_id.as_str()),
            (SHOP, "69862244418")
        );
        assert_eq!(c.version, 1_796_229_909_000);
        assert_eq!(c.attrs["installed"], false);
        assert_eq!(c.attrs["myshopify_domain"], "hookline-demo.myshopify.com");
        let s = sync(&d);
        assert_eq!(
            (s.name.as_str(), s.action.as_str()),
            (CLEANUP, CLEANUP_SHOP)
        );
        assert!(!s.baseline);
        assert_eq!(
            s.payload,
            json!({"shop_id": "69862244418", "myshopify_domain": "hookline-demo.myshopify.com",
                   "updated_at": 1_796_229_909_000_i64})
        );
        assert!(kinds(&d).is_empty());
    }

    #[test]
    fn unknown_topics_are_ignored_under_one_key_per_body() {
        let d = described("products/update");
        assert_eq!(d.effects, Effects::Ignored);
        assert_eq!(d.event_type, "products/update");
        let body = sample("products/update");
        assert_eq!(d.event_id, format!("other:{}", digest(body)));
        let e = describe_body("carts/create", body.as_bytes()).unwrap();
        assert_eq!(e.event_id, d.event_id, "relabelling mints no new record");
        // Unknown topics need a JSON body, of any shape.
        assert!(describe_body("x", b"[1]").unwrap().effects.is_ignored());
        assert!(describe_body("x", b"{\"a\":").is_err());
    }

    #[test]
    fn bodies_that_do_not_fit_their_topic_are_parse_errors() {
        // A shop resent as an order, an order as app/uninstalled.
        assert!(describe_body("orders/paid", sample("app/uninstalled").as_bytes()).is_err());
        assert!(describe_body("app/uninstalled", sample("orders/paid").as_bytes()).is_err());
        for body in [
            &b""[..],
            b"null",
            b"{}",
            br#"{"id": 1}"#,
            br#"{"id": 1, "updated_at": "2026-12-01T10:00:00Z"}"#,
            br#"{"id": 1, "updated_at": "yesterday", "line_items": []}"#,
            br#"{"id": -1, "updated_at": "2026-12-01T10:00:00Z", "line_items": []}"#,
            br#"{"id": 1, "updated_at": "2026-12-01T10:00:00Z", "line_items": [{"sku": "x"}]}"#,
        ] {
            assert!(
                describe_body("orders/updated", body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let err = describe_body(
            "orders/paid",
            br#"{"id": 1, "updated_at": "soon", "line_items": []}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("updated_at") && !err.contains("soon"), "{err}");
    }

    #[test]
    fn describe_takes_the_topic_from_the_header_and_needs_one() {
        let secret = "whsec_aG9va2xpbmUtbG9jYWwtdGVzdC1zZWNyZXQ=";
        let verifier = Verifier::new(Scheme::Shopify, Secrets::parse_list(secret).unwrap(), 300)
            .unwrap()
            .with_clock(FixedClock::at_secs(1_764_600_000));
        let body = sample("orders/paid").as_bytes();
        let signed = hookline::verify::sign(
            &Scheme::Shopify,
            &Secret::new(secret),
            &SignInput {
                body,
                timestamp: 0,
                id: "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                url: None,
            },
        )
        .unwrap();
        let mut headers: http::HeaderMap = signed
            .into_iter()
            .map(|(k, v)| (k, v.parse().unwrap()))
            .collect();
        let verify = |headers: &http::HeaderMap| {
            describe(
                &verifier
                    .verify(&Incoming {
                        headers,
                        body,
                        url: None,
                    })
                    .unwrap(),
            )
        };
        assert!(
            verify(&headers)
                .unwrap_err()
                .to_string()
                .contains("X-Shopify-Topic")
        );
        headers.insert("x-shopify-topic", "orders/paid".parse().unwrap());
        assert_eq!(verify(&headers).unwrap(), described("orders/paid"));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(
            body in prop::collection::vec(any::<u8>(), 0..256),
            topic in prop::sample::select(vec!["orders/paid", "orders/cancelled", "app/uninstalled", "x"]),
        ) {
            let _ = describe_body(topic, &body);
        }

        #[test]
        fn never_panics_on_arbitrary_states(
            financial in prop::option::of("[a-z_]{0,20}"),
            fulfilment in prop::option::of("[a-z_]{0,12}"),
            cancelled in any::<bool>(),
        ) {
            let body = json!({"id": 7, "updated_at": "2026-12-01T10:00:00Z", "line_items": [],
                "financial_status": financial, "fulfillment_status": fulfilment,
                "cancelled_at": cancelled.then_some("2026-12-01T10:00:00Z")});
            let d = describe_body("orders/updated", &serde_json::to_vec(&body).unwrap()).unwrap();
            let offset = change(&d).version - d.provider_ts;
            prop_assert!((0..1000).contains(&offset));
        }
    }
}

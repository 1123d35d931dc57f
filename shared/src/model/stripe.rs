//! Stripe webhook events (`payment-events`).
//!
//! [`Event`] is the envelope (`id`, `type`, `created`, `livemode`, `api_version`, `data`) with its
//! `data.object` parsed by event type into a [`Payload`]. Types Hookline does not handle parse to
//! [`Payload::Unhandled`] whatever their object, so they can be acknowledged and ignored.
//!
//! Objects are modelled across API versions: the `2025-03-31.basil` version moved a
//! subscription's `current_period_end` onto its items and an invoice's `subscription` under
//! `parent.subscription_details`; both the old and new places are read. References Stripe can
//! expand (`customer`, `subscription`, ...) are accepted as an id or as the expanded object, of
//! which only the `id` is kept (see [`ExpandableId`]).

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// `checkout.session.completed`
pub const CHECKOUT_SESSION_COMPLETED: &str = "checkout.session.completed";
/// `checkout.session.async_payment_succeeded`: a delayed payment method (bank debit) cleared.
pub const CHECKOUT_SESSION_ASYNC_SUCCEEDED: &str = "checkout.session.async_payment_succeeded";
/// `checkout.session.async_payment_failed`: a delayed payment method failed.
pub const CHECKOUT_SESSION_ASYNC_FAILED: &str = "checkout.session.async_payment_failed";
/// `customer.subscription.created`
pub const SUBSCRIPTION_CREATED: &str = "customer.subscription.created";
/// `customer.subscription.updated`
pub const SUBSCRIPTION_UPDATED: &str = "customer.subscription.updated";
/// `customer.subscription.deleted`
pub const SUBSCRIPTION_DELETED: &str = "customer.subscription.deleted";
/// `invoice.paid`
pub const INVOICE_PAID: &str = "invoice.paid";
/// `invoice.payment_failed`
pub const INVOICE_PAYMENT_FAILED: &str = "invoice.payment_failed";
/// `payment_intent.succeeded`
pub const PAYMENT_INTENT_SUCCEEDED: &str = "payment_intent.succeeded";
/// `payment_intent.payment_failed`
pub const PAYMENT_INTENT_PAYMENT_FAILED: &str = "payment_intent.payment_failed";

/// A Stripe event, its object parsed for the types Hookline handles.
///
/// Deserialize it straight from the body: the object is parsed according to `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawEvent")]
pub struct Event {
    /// Event id (`evt_...`): the same on every redelivery.
    pub id: String,
    /// Event type, e.g. `invoice.paid`.
    pub event_type: String,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// Live mode (false for test mode).
    pub livemode: bool,
    /// The API version the object is rendered in, when the event carries one.
    pub api_version: Option<String>,
    /// `data.previous_attributes` of `*.updated` events: the changed fields' old values.
    pub previous_attributes: Option<Map<String, Value>>,
    /// The typed object.
    pub payload: Payload,
}

impl Event {
    /// True when `data.previous_attributes` names `field` (the field changed in this update).
    pub fn changed(&self, field: &str) -> bool {
        self.previous_attributes
            .as_ref()
            .is_some_and(|p| p.contains_key(field))
    }
}

/// The object of an event, by event type.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `checkout.session.completed`.
    CheckoutSessionCompleted(Box<CheckoutSession>),
    /// `checkout.session.async_payment_succeeded`.
    CheckoutSessionAsyncPaymentSucceeded(Box<CheckoutSession>),
    /// `checkout.session.async_payment_failed`.
    CheckoutSessionAsyncPaymentFailed(Box<CheckoutSession>),
    /// `customer.subscription.created`.
    SubscriptionCreated(Box<Subscription>),
    /// `customer.subscription.updated`.
    SubscriptionUpdated(Box<Subscription>),
    /// `customer.subscription.deleted`.
    SubscriptionDeleted(Box<Subscription>),
    /// `invoice.paid`.
    InvoicePaid(Box<Invoice>),
    /// `invoice.payment_failed`.
    InvoicePaymentFailed(Box<Invoice>),
    /// `payment_intent.succeeded`.
    PaymentIntentSucceeded(Box<PaymentIntent>),
    /// `payment_intent.payment_failed`.
    PaymentIntentPaymentFailed(Box<PaymentIntent>),
    /// Any other type: not handled here, its object is not looked at.
    Unhandled,
}

/// The envelope as sent, object untyped.
#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    created: i64,
    #[serde(default)]
    livemode: bool,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    data: RawData,
}

/// `data.object` is kept as raw text and parsed once, straight into the type the event names:
/// no intermediate `Value` tree (half the parsing cost of a 4 KiB event).
#[derive(Deserialize, Default)]
struct RawData {
    #[serde(default)]
    object: Option<Box<RawValue>>,
    #[serde(default)]
    previous_attributes: Option<Map<String, Value>>,
}

impl TryFrom<RawEvent> for Event {
    type Error = serde_json::Error;

    fn try_from(raw: RawEvent) -> Result<Self, Self::Error> {
        fn object<T: de::DeserializeOwned>(
            event_type: &str,
            object: Option<Box<RawValue>>,
        ) -> Result<Box<T>, serde_json::Error> {
            serde_json::from_str(object.as_deref().map_or("null", RawValue::get)).map_err(|e| {
                de::Error::custom(format_args!("data.object of a {event_type} event: {e}"))
            })
        }
        let RawData {
            object: obj,
            previous_attributes,
        } = raw.data;
        let t = raw.event_type.as_str();
        let payload = match t {
            CHECKOUT_SESSION_COMPLETED => Payload::CheckoutSessionCompleted(object(t, obj)?),
            CHECKOUT_SESSION_ASYNC_SUCCEEDED => {
                Payload::CheckoutSessionAsyncPaymentSucceeded(object(t, obj)?)
            }
            CHECKOUT_SESSION_ASYNC_FAILED => {
                Payload::CheckoutSessionAsyncPaymentFailed(object(t, obj)?)
            }
            SUBSCRIPTION_CREATED => Payload::SubscriptionCreated(object(t, obj)?),
            SUBSCRIPTION_UPDATED => Payload::SubscriptionUpdated(object(t, obj)?),
            SUBSCRIPTION_DELETED => Payload::SubscriptionDeleted(object(t, obj)?),
            INVOICE_PAID => Payload::InvoicePaid(object(t, obj)?),
            INVOICE_PAYMENT_FAILED => Payload::InvoicePaymentFailed(object(t, obj)?),
            PAYMENT_INTENT_SUCCEEDED => Payload::PaymentIntentSucceeded(object(t, obj)?),
            PAYMENT_INTENT_PAYMENT_FAILED => Payload::PaymentIntentPaymentFailed(object(t, obj)?),
            _ => Payload::Unhandled,
        };
        Ok(Self {
            id: raw.id,
            event_type: raw.event_type,
            created: raw.created,
            livemode: raw.livemode,
            api_version: raw.api_version,
            previous_attributes,
            payload,
        })
    }
}

/// A Checkout Session (`cs_...`), as of `checkout.session.completed`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CheckoutSession {
    /// Session id.
    pub id: String,
    /// The customer, when one was created or given.
    #[serde(default, deserialize_with = "expandable_opt")]
    pub customer: Option<String>,
    /// The subscription created by a `subscription`-mode session.
    #[serde(default, deserialize_with = "expandable_opt")]
    pub subscription: Option<String>,
    /// The payment intent of a `payment`-mode session.
    #[serde(default, deserialize_with = "expandable_opt")]
    pub payment_intent: Option<String>,
    /// `paid`, `unpaid` (delayed payment methods) or `no_payment_required` (trials, 100% off).
    pub payment_status: String,
    /// `payment`, `subscription` or `setup`.
    pub mode: String,
    /// Total in the currency's smallest unit.
    #[serde(default)]
    pub amount_total: Option<i64>,
    /// Three-letter ISO currency code, lower case.
    #[serde(default)]
    pub currency: Option<String>,
    /// What the customer entered at checkout.
    #[serde(default)]
    pub customer_details: Option<CustomerDetails>,
    /// The email passed when the session was created, if any.
    #[serde(default)]
    pub customer_email: Option<String>,
    /// The application's own reference for the buyer, if it set one.
    #[serde(default)]
    pub client_reference_id: Option<String>,
}

impl CheckoutSession {
    /// The buyer's email: as entered at checkout, else as given at session creation.
    pub fn email(&self) -> Option<&str> {
        self.customer_details
            .as_ref()
            .and_then(|d| d.email.as_deref())
            .or(self.customer_email.as_deref())
    }

    /// True when the session is paid for, or needed no payment (a trial, a full discount):
    /// Stripe's condition for fulfilling it now rather than on `async_payment_succeeded`.
    pub fn is_fulfillable(&self) -> bool {
        matches!(self.payment_status.as_str(), "paid" | "no_payment_required")
    }
}

/// Customer details collected by Checkout.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct CustomerDetails {
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A Subscription (`sub_...`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Subscription {
    /// Subscription id.
    pub id: String,
    /// The customer.
    #[serde(deserialize_with = "expandable")]
    pub customer: String,
    /// `incomplete`, `incomplete_expired`, `trialing`, `active`, `past_due`, `canceled`,
    /// `unpaid` or `paused`.
    pub status: String,
    /// The subscribed prices.
    #[serde(default)]
    pub items: List<SubscriptionItem>,
    /// End of the current period, seconds (API versions before `2025-03-31.basil`).
    #[serde(default)]
    pub current_period_end: Option<i64>,
    /// True when the subscription ends at the end of the current period.
    #[serde(default)]
    pub cancel_at_period_end: bool,
    /// When it was canceled, seconds.
    #[serde(default)]
    pub canceled_at: Option<i64>,
    /// When it ended, seconds.
    #[serde(default)]
    pub ended_at: Option<i64>,
    /// When the trial ends, seconds.
    #[serde(default)]
    pub trial_end: Option<i64>,
}

impl Subscription {
    /// True for the statuses that give the customer access: `active` and `trialing`.
    pub fn grants_access(&self) -> bool {
        matches!(self.status.as_str(), "active" | "trialing")
    }

    /// The price of the first item (a subscription usually has one).
    pub fn price_id(&self) -> Option<&str> {
        self.items
            .data
            .iter()
            .find_map(|i| i.price.as_ref().map(|p| p.id.as_str()))
    }

    /// End of the current period, seconds: the subscription's own (older API versions), else
    /// the latest of its items' (`2025-03-31.basil` and later, where items may have different
    /// periods: access lasts until the last one ends).
    pub fn current_period_end(&self) -> Option<i64> {
        self.current_period_end.or_else(|| {
            self.items
                .data
                .iter()
                .filter_map(|i| i.current_period_end)
                .max()
        })
    }
}

/// A Stripe list object: only its `data` is read.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct List<T> {
    /// The elements (the first page, which for subscription items is all of them in practice).
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        Self { data: Vec::new() }
    }
}

/// One item of a subscription.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SubscriptionItem {
    /// Item id (`si_...`).
    #[serde(default)]
    pub id: Option<String>,
    /// The price.
    #[serde(default)]
    pub price: Option<Price>,
    /// Quantity.
    #[serde(default)]
    pub quantity: Option<u64>,
    /// End of this item's current period, seconds (`2025-03-31.basil` and later).
    #[serde(default)]
    pub current_period_end: Option<i64>,
}

/// A Price (`price_...`): only its id is read.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Price {
    /// Price id.
    pub id: String,
}

/// An Invoice (`in_...`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Invoice {
    /// Invoice id.
    pub id: String,
    /// The customer billed.
    #[serde(default, deserialize_with = "expandable_opt")]
    pub customer: Option<String>,
    /// The subscription billed (API versions before `2025-03-31.basil`).
    #[serde(default, deserialize_with = "expandable_opt")]
    pub subscription: Option<String>,
    /// What generated the invoice (`2025-03-31.basil` and later).
    #[serde(default)]
    pub parent: Option<InvoiceParent>,
    /// Amount paid, smallest currency unit.
    pub amount_paid: i64,
    /// Amount due, smallest currency unit.
    pub amount_due: i64,
    /// Three-letter ISO currency code, lower case.
    pub currency: String,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    #[serde(default)]
    pub status: Option<String>,
    /// The page where the customer can see and pay the invoice.
    #[serde(default)]
    pub hosted_invoice_url: Option<String>,
    /// Payment attempts so far.
    #[serde(default)]
    pub attempt_count: u32,
    /// The customer's email at finalization.
    #[serde(default)]
    pub customer_email: Option<String>,
    /// Human-readable invoice number.
    #[serde(default)]
    pub number: Option<String>,
    /// When Stripe will retry the payment, seconds, if it will.
    #[serde(default)]
    pub next_payment_attempt: Option<i64>,
}

impl Invoice {
    /// The subscription billed, wherever the API version puts it.
    pub fn subscription_id(&self) -> Option<&str> {
        self.subscription.as_deref().or_else(|| {
            self.parent
                .as_ref()?
                .subscription_details
                .as_ref()?
                .subscription
                .as_deref()
        })
    }
}

/// `invoice.parent` (`2025-03-31.basil` and later).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct InvoiceParent {
    /// Present when a subscription generated the invoice.
    #[serde(default)]
    pub subscription_details: Option<SubscriptionDetails>,
}

/// `invoice.parent.subscription_details`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct SubscriptionDetails {
    /// The subscription.
    #[serde(default, deserialize_with = "expandable_opt")]
    pub subscription: Option<String>,
}

/// A PaymentIntent (`pi_...`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PaymentIntent {
    /// PaymentIntent id.
    pub id: String,
    /// The customer, if the payment is attached to one.
    #[serde(default, deserialize_with = "expandable_opt")]
    pub customer: Option<String>,
    /// Amount, smallest currency unit.
    pub amount: i64,
    /// Three-letter ISO currency code, lower case.
    pub currency: String,
    /// e.g. `succeeded`, `requires_payment_method`.
    pub status: String,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_payment_error: Option<PaymentError>,
    /// Email the receipt goes to, if set.
    #[serde(default)]
    pub receipt_email: Option<String>,
}

/// `last_payment_error` of a PaymentIntent.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct PaymentError {
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// Error code, e.g. `card_declined`.
    #[serde(default)]
    pub code: Option<String>,
    /// Card issuer's decline code, e.g. `insufficient_funds`.
    #[serde(default)]
    pub decline_code: Option<String>,
}

/// An id Stripe may expand into the object it names: `"cus_123"` or `{"id": "cus_123", ...}`.
/// Only the id is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ExpandableId(pub String);

impl<'de> Deserialize<'de> for ExpandableId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl<'de> Visitor<'de> for IdVisitor {
            type Value = ExpandableId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id string or an expanded object with an id")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ExpandableId(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ExpandableId(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "id" && id.is_none() {
                        id = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                id.map(ExpandableId)
                    .ok_or_else(|| de::Error::missing_field("id"))
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

fn expandable<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    ExpandableId::deserialize(d).map(|e| e.0)
}

fn expandable_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<ExpandableId>::deserialize(d).map(|o| o.map(|e| e.0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn event(t: &str, object: Value) -> Result<Event, serde_json::Error> {
        serde_json::from_value(json!({
            "id": "evt_1", "object": "event", "type": t, "created": 1_700_000_000,
            "livemode": false, "api_version": "2024-06-20", "data": {"object": object}
        }))
    }

    fn subscription(customer: Value) -> Value {
        json!({"id": "sub_1", "object": "subscription", "customer": customer, "status": "active"})
    }

    #[test]
    fn expandable_id_is_accepted_as_a_string_or_an_expanded_object() {
        let plain: ExpandableId = serde_json::from_value(json!("cus_1")).unwrap();
        let expanded: ExpandableId =
            serde_json::from_value(json!({"object": "customer", "id": "cus_1", "email": null}))
                .unwrap();
        assert_eq!(plain, ExpandableId("cus_1".into()));
        assert_eq!(expanded, plain);
        // From bytes too (borrowed keys), not only from a Value.
        let from_str: ExpandableId =
            serde_json::from_str(r#"{"id":"cus_1","metadata":{"id":"x"}}"#).unwrap();
        assert_eq!(from_str, plain);
        for bad in [
            json!(42),
            json!({"object": "customer"}),
            json!({"id": 7}),
            json!([]),
        ] {
            assert!(serde_json::from_value::<ExpandableId>(bad).is_err());
        }
    }

    #[test]
    fn expandable_fields_take_the_id_of_an_expanded_object() {
        let e = event(
            SUBSCRIPTION_UPDATED,
            subscription(json!({"id": "cus_9", "object": "customer"})),
        )
        .unwrap();
        let Payload::SubscriptionUpdated(s) = e.payload else {
            panic!("wrong payload")
        };
        assert_eq!(s.customer, "cus_9");

        let pi = json!({"id": "pi_1", "object": "payment_intent", "amount": 100, "currency": "eur",
            "status": "succeeded", "customer": {"id": "cus_8", "object": "customer"}});
        let Payload::PaymentIntentSucceeded(p) =
            event(PAYMENT_INTENT_SUCCEEDED, pi).unwrap().payload
        else {
            panic!("wrong payload")
        };
        assert_eq!(p.customer.as_deref(), Some("cus_8"));
    }

    #[test]
    fn optional_expandables_accept_null_and_absence() {
        let pi = json!({"id": "pi_1", "amount": 100, "currency": "eur", "status": "succeeded",
            "customer": null});
        let Payload::PaymentIntentSucceeded(p) =
            event(PAYMENT_INTENT_SUCCEEDED, pi).unwrap().payload
        else {
            panic!("wrong payload")
        };
        assert_eq!(p.customer, None);
        let pi = json!({"id": "pi_1", "amount": 100, "currency": "eur", "status": "succeeded"});
        assert!(event(PAYMENT_INTENT_SUCCEEDED, pi).is_ok());
    }

    #[test]
    fn period_end_and_invoice_subscription_are_read_in_old_and_new_places() {
        let mut old = subscription(json!("cus_1"));
        old["current_period_end"] = json!(1_702_592_000);
        let Payload::SubscriptionCreated(s) = event(SUBSCRIPTION_CREATED, old).unwrap().payload
        else {
            panic!("wrong payload")
        };
        assert_eq!(s.current_period_end(), Some(1_702_592_000));

        let mut new = subscription(json!("cus_1"));
        new["items"] = json!({"object": "list", "data": [
            {"id": "si_1", "price": {"id": "price_a"}, "current_period_end": 1_702_592_000},
            {"id": "si_2", "price": {"id": "price_b"}, "current_period_end": 1_731_536_000},
        ]});
        let Payload::SubscriptionCreated(s) = event(SUBSCRIPTION_CREATED, new).unwrap().payload
        else {
            panic!("wrong payload")
        };
        assert_eq!(s.current_period_end(), Some(1_731_536_000));
        assert_eq!(s.price_id(), Some("price_a"));

        let base = json!({"id": "in_1", "amount_paid": 1, "amount_due": 1, "currency": "eur"});
        let mut old = base.clone();
        old["subscription"] = json!("sub_old");
        let mut new = base.clone();
        new["parent"] = json!({"type": "subscription_details",
            "subscription_details": {"subscription": "sub_new", "metadata": {}}});
        for (object, expected) in [(old, Some("sub_old")), (new, Some("sub_new")), (base, None)] {
            let Payload::InvoicePaid(i) = event(INVOICE_PAID, object).unwrap().payload else {
                panic!("wrong payload")
            };
            assert_eq!(i.subscription_id(), expected);
        }
    }

    #[test]
    fn unknown_types_are_unhandled_whatever_their_object() {
        for object in [
            json!({"id": "cus_1"}),
            json!(null),
            json!([1, 2]),
            json!("x"),
        ] {
            let e = event("customer.created", object).unwrap();
            assert_eq!(e.payload, Payload::Unhandled);
        }
        let e: Event = serde_json::from_str(r#"{"id":"evt_1","type":"ping","created":1}"#).unwrap();
        assert_eq!(e.payload, Payload::Unhandled);
    }

    #[test]
    fn known_types_with_wrong_objects_and_broken_envelopes_are_errors() {
        assert!(event(INVOICE_PAID, json!({"id": "in_1"})).is_err());
        assert!(event(INVOICE_PAID, json!(null)).is_err());
        assert!(event(SUBSCRIPTION_DELETED, subscription(json!(12))).is_err());
        let err = event(CHECKOUT_SESSION_COMPLETED, json!({"id": 5})).unwrap_err();
        assert!(
            err.to_string().contains(CHECKOUT_SESSION_COMPLETED),
            "{err}"
        );
        for body in [
            r#"{"id":"evt_1","type":42,"created":1}"#,
            r#"{"id":"evt_1","type":"invoice.paid"}"#,
            r#"{"type":"invoice.paid","created":1}"#,
            r#"{"id":"evt_1","type":"ping","created":"yesterday"}"#,
            "[]",
            "",
        ] {
            assert!(serde_json::from_str::<Event>(body).is_err(), "{body}");
        }
    }

    #[test]
    fn previous_attributes_tell_what_changed() {
        let e: Event = serde_json::from_value(json!({
            "id": "evt_1", "type": SUBSCRIPTION_UPDATED, "created": 1,
            "data": {"object": subscription(json!("cus_1")),
                     "previous_attributes": {"status": "trialing"}}
        }))
        .unwrap();
        assert!(e.changed("status"));
        assert!(!e.changed("items"));
    }
}

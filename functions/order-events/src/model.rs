//! Shopify webhook bodies, as the REST Admin API's resources: an order (`orders/*` topics) and a
//! shop (`app/uninstalled`). Only the fields the mapping uses; unknown fields are ignored. A
//! Shopify body has no envelope: the topic comes in the unsigned `X-Shopify-Topic` header, so
//! every decision is taken from these fields, never from the topic alone.

use serde::Deserialize;

/// The topics this receiver understands, from `X-Shopify-Topic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `orders/create`.
    OrdersCreate,
    /// `orders/updated`.
    OrdersUpdated,
    /// `orders/paid`.
    OrdersPaid,
    /// `orders/cancelled`.
    OrdersCancelled,
    /// `orders/fulfilled`.
    OrdersFulfilled,
    /// `app/uninstalled`.
    AppUninstalled,
}

impl Topic {
    /// Every topic, in the order of the mapping table.
    pub const ALL: [Self; 6] = [
        Self::OrdersCreate,
        Self::OrdersUpdated,
        Self::OrdersPaid,
        Self::OrdersCancelled,
        Self::OrdersFulfilled,
        Self::AppUninstalled,
    ];

    /// The topic as Shopify names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrdersCreate => "orders/create",
            Self::OrdersUpdated => "orders/updated",
            Self::OrdersPaid => "orders/paid",
            Self::OrdersCancelled => "orders/cancelled",
            Self::OrdersFulfilled => "orders/fulfilled",
            Self::AppUninstalled => "app/uninstalled",
        }
    }

    /// The topic named `s` (exactly, as Shopify sends it), if this receiver handles it.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// True for the `orders/*` topics, whose body is an [`Order`].
    pub fn is_order(self) -> bool {
        self != Self::AppUninstalled
    }
}

/// An order, as the `orders/*` topics send it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Order {
    /// The order's id: unique across every shop, so it names one shop's order on its own.
    pub id: u64,
    /// `gid://shopify/Order/<id>`, what the GraphQL Admin API takes.
    #[serde(default)]
    pub admin_graphql_api_id: Option<String>,
    /// The order's name in the shop, e.g. `#1001`.
    #[serde(default)]
    pub name: Option<String>,
    /// When the order last changed (RFC 3339, whole seconds): its version.
    pub updated_at: String,
    /// When it was created.
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it was cancelled; `null` while it is not.
    #[serde(default)]
    pub cancelled_at: Option<String>,
    /// Why (`customer`, `fraud`, `inventory`, `declined`, `other`).
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// `pending`, `authorized`, `partially_paid`, `paid`, `partially_refunded`, `refunded`,
    /// `voided` or `expired`.
    #[serde(default)]
    pub financial_status: Option<String>,
    /// `null` (nothing fulfilled), `partial`, `fulfilled` or `restocked`.
    #[serde(default)]
    pub fulfillment_status: Option<String>,
    /// Total price, a decimal string.
    #[serde(default)]
    pub total_price: Option<String>,
    /// ISO 4217 currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// The line items. Required: every order has them, and a body of another resource (a shop
    /// resent under an order topic) must not pass for an order.
    pub line_items: Vec<LineItem>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LineItem {
    /// The line's id.
    pub id: u64,
    /// The variant bought, if it still exists.
    #[serde(default)]
    pub variant_id: Option<u64>,
    /// Its SKU.
    #[serde(default)]
    pub sku: Option<String>,
    /// Units ordered.
    #[serde(default)]
    pub quantity: Option<u64>,
}

impl Order {
    /// Paid (fully, or partly refunded since) and not cancelled: the one state that is fulfilled.
    pub fn is_fulfillable(&self) -> bool {
        self.cancelled_at.is_none()
            && matches!(
                self.financial_status.as_deref(),
                Some("paid" | "partially_refunded")
            )
    }
}

/// A shop, as `app/uninstalled` sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Shop {
    /// The shop's id.
    pub id: u64,
    /// `<name>.myshopify.com`. Required: every shop has one, and an order resent as
    /// `app/uninstalled` must not pass for a shop.
    pub myshopify_domain: String,
    /// The shop's primary domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// When the shop's record last changed (RFC 3339).
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn topics_round_trip() {
        for t in Topic::ALL {
            assert_eq!(Topic::parse(t.as_str()), Some(t));
        }
        assert_eq!(Topic::parse("orders/delete"), None);
        assert_eq!(Topic::parse("ORDERS/PAID"), None);
        assert!(!Topic::AppUninstalled.is_order());
    }

    #[test]
    fn a_minimal_order_is_enough() {
        let o: Order = serde_json::from_str(
            r#"{"id": 1, "updated_at": "2026-12-01T10:00:00Z", "line_items": []}"#,
        )
        .unwrap();
        assert!(!o.is_fulfillable());
        assert!(o.line_items.is_empty());
    }
}

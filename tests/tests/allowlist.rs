//! `ALLOWED_SOURCE_CIDRS` through a whole receiver against the emulator: a request from outside
//! the allowlist answers 403 with a JSON body before any other work and makes no AWS call, even
//! when its signature is genuine; one from inside goes through.

#![allow(clippy::unwrap_used)]

use aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use hookline::allowlist::SourceAllowlist;
use hookline::clock::{FixedClock, SharedClock};
use hookline::receiver::Receiver;
use hookline_tests::{LOCAL_SECRET, Stack, local_receiver, signed_request};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::Value;

const NOW: i64 = 1_750_000_000;

fn receiver(stack: &Stack, clock: &SharedClock) -> Receiver {
    local_receiver(
        payment_events::spec(),
        clock,
        stack.store(clock.clone()),
        stack.queue(),
    )
    .with_allowed_sources(SourceAllowlist::parse("192.0.2.0/24, 2001:db8::/32").unwrap())
}

/// A genuine `invoice.paid` delivery, as API Gateway hands it over from `source_ip`.
fn from(source_ip: Option<&str>, event_id: &str) -> lambda_http::Request {
    let path = format!(
        "{}/../events/payment-events/invoice.paid.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["id"] = event_id.into();
    v["created"] = NOW.into();
    let body = serde_json::to_vec(&v).unwrap();
    let req = signed_request(
        &payment_events::spec().scheme,
        &body,
        LOCAL_SECRET,
        event_id,
        NOW,
    );
    match source_ip {
        Some(ip) => {
            let mut ctx = ApiGatewayV2httpRequestContext::default();
            ctx.http.source_ip = Some(ip.to_owned());
            req.with_request_context(RequestContext::ApiGatewayV2(ctx))
        }
        None => req,
    }
}

#[tokio::test]
async fn outside_the_allowlist_is_403_before_any_work() {
    let stack = Stack::new().await.unwrap();
    let clock: SharedClock = FixedClock::at_secs(NOW);
    let rx = receiver(&stack, &clock);

    for (source, id) in [
        (Some("198.51.100.1"), "evt_allow_out_v4"),
        (Some("2001:db9::1"), "evt_allow_out_v6"),
        (None, "evt_allow_unknown"),
    ] {
        let resp = rx.handle(from(source, id)).await;
        assert_eq!(resp.status(), 403, "{source:?}");
        let Body::Text(t) = resp.body() else {
            panic!("text body")
        };
        let v: Value = serde_json::from_str(t).unwrap();
        assert_eq!(v["error"], "forbidden");
        assert!(stack.calls.calls().is_empty(), "no AWS call for {source:?}");
        let stored = stack
            .store(clock.clone())
            .get_event("stripe", id)
            .await
            .unwrap();
        assert!(stored.is_none(), "nothing written for {source:?}");
        stack.calls.reset();
    }

    for (source, id) in [
        ("192.0.2.44", "evt_allow_in_v4"),
        ("2001:db8::44", "evt_allow_in_v6"),
    ] {
        let resp = rx.handle(from(Some(source), id)).await;
        assert_eq!(resp.status(), 200, "{source}");
    }
}

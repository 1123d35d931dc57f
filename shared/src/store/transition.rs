//! One conditional transition of a follow-up, built once for event actions and syncs, and how
//! it recognises its own earlier success (docs/FOLLOWUPS.md, "Every transition recognises its own
//! earlier success").
//!
//! Invariants kept here:
//! - a transition is ONE conditional update of one item: of an event action's entry in its
//!   event record's `outbox` map, or of an entity's sync (its `sync_*` attributes). A [`Slot`]
//!   says which, and names each lifecycle attribute ([`Field`]) there, so claim, finish, reset
//!   and the pre-POST mark are written once for both (docs/DATA.md names the attributes);
//! - the SDK retries a write whose answer was lost, and that retry fails the write's own
//!   condition. Each transition therefore writes a token of its own with the state it moves to (a
//!   claim its lease token, a finish the lease token as `last_lease`, an operator's reset a fresh
//!   `reset_token`) and asks for the item as it is when the condition fails (`ALL_OLD`): our
//!   token with our target state there means the refusal met our own write, which is then
//!   reported as written ([`transition`]);
//! - a [`Change`] is data: DynamoDB gets it rendered as an update and a condition expression
//!   ([`Change::request`]), the in-memory double applies the very same change to its items
//!   ([`Change::holds`], [`Change::apply`]), so both keep the same conditions and leases.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::codec::{
    ENTRY_CHECK_AT, ENTRY_REQUEUES, Item, OUTBOX, REV, SYNC_ATTEMPT, SYNC_GENERATION,
    SYNC_LAST_STATUS, SYNC_LEASE, SYNC_LEASE_UNTIL, SYNC_REASON, SYNC_REQUEUES, SYNC_STATUS, n, s,
};
use super::dynamo::dynamo_err;
use super::schema::{ENTITY_SK, EVENT_SK, PENDING_SK, PK, SK};
use super::{ActionStatus, EventStore, StoreError};

pub(super) fn lease_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Where a follow-up's lifecycle lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot<'a> {
    /// The event action of this kind: an entry of its event record's `outbox` map.
    Action(&'a str),
    /// The entity's sync: `sync_*` attributes of the entity record.
    Sync,
}

/// A lifecycle attribute of a follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    /// PENDING, RUNNING, DONE, FAILED or SKIPPED.
    Status,
    /// The lease token while claimed.
    Lease,
    /// The lease's end, ms (kept through a backoff: no copy claims it before then).
    LeaseUntil,
    /// Attempts started.
    Attempt,
    /// Bumped by an operator's reset.
    Generation,
    /// The target's last HTTP status.
    LastStatus,
    /// Why it ended this way.
    Reason,
    /// The lease token of the last finish: the finish's proof of its own write.
    LastLease,
    /// The fresh token of the last operator reset.
    ResetToken,
    /// When the reconciler looks at it: an action's own `check_at`; a sync's is the entity's
    /// `next_check_at`.
    CheckAt,
    /// Re-enqueues since the last claim.
    Requeues,
    /// When it last finished (event actions only).
    FinishedAt,
}

impl<'a> Slot<'a> {
    /// The sort key of the item the follow-up lives on.
    pub(super) fn sk(self) -> &'static str {
        match self {
            Self::Action(_) => EVENT_SK,
            Self::Sync => ENTITY_SK,
        }
    }

    /// Where `field` lives for this follow-up; `None` when this kind keeps no such attribute.
    pub(super) fn at(self, field: Field) -> Option<Path<'a>> {
        let sync = |attr| Some(Path::Item(attr));
        match self {
            Self::Action(kind) => Some(Path::Entry(
                kind,
                match field {
                    Field::Status => "status",
                    Field::Lease => "lease",
                    Field::LeaseUntil => "lease_until",
                    Field::Attempt => "attempt",
                    Field::Generation => "generation",
                    Field::LastStatus => "last_status",
                    Field::Reason => "reason",
                    Field::LastLease => "last_lease",
                    Field::ResetToken => "reset_token",
                    Field::CheckAt => ENTRY_CHECK_AT,
                    Field::Requeues => ENTRY_REQUEUES,
                    Field::FinishedAt => "finished_at",
                },
            )),
            Self::Sync => match field {
                Field::Status => sync(SYNC_STATUS),
                Field::Lease => sync(SYNC_LEASE),
                Field::LeaseUntil => sync(SYNC_LEASE_UNTIL),
                Field::Attempt => sync(SYNC_ATTEMPT),
                Field::Generation => sync(SYNC_GENERATION),
                Field::LastStatus => sync(SYNC_LAST_STATUS),
                Field::Reason => sync(SYNC_REASON),
                Field::LastLease => sync("sync_last_lease"),
                Field::ResetToken => sync("sync_reset_token"),
                Field::CheckAt => sync(PENDING_SK),
                Field::Requeues => sync(SYNC_REQUEUES),
                Field::FinishedAt => None,
            },
        }
    }
}

/// An attribute of an item: an attribute of an outbox entry (by action kind), or of the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path<'a> {
    /// `outbox.<kind>.<attribute>`.
    Entry(&'a str, &'static str),
    /// A top-level attribute.
    Item(&'static str),
}

impl Path<'_> {
    /// The value at this path of `item`, if any.
    pub(super) fn get<'i>(&self, item: &'i Item) -> Option<&'i AttributeValue> {
        match self {
            Self::Item(attr) => item.get(*attr),
            Self::Entry(kind, attr) => match item.get(OUTBOX)? {
                AttributeValue::M(o) => match o.get(*kind)? {
                    AttributeValue::M(e) => e.get(*attr),
                    _ => None,
                },
                _ => None,
            },
        }
    }

    /// The map this path's attribute belongs to: DynamoDB refuses an update of a path whose
    /// parent does not exist.
    fn parent<'i>(&self, item: &'i mut Item) -> Result<&'i mut Item, StoreError> {
        match self {
            Self::Item(_) => Ok(item),
            Self::Entry(kind, _) => match item.get_mut(OUTBOX) {
                Some(AttributeValue::M(o)) => match o.get_mut(*kind) {
                    Some(AttributeValue::M(e)) => Ok(e),
                    _ => Err(invalid_path()),
                },
                _ => Err(invalid_path()),
            },
        }
    }

    fn attr(&self) -> &'static str {
        match self {
            Self::Item(a) | Self::Entry(_, a) => a,
        }
    }

    /// The expression for this path, its names added to `names`.
    fn render(&self, names: &mut HashMap<String, String>) -> String {
        match self {
            Self::Item(attr) => {
                names.insert(format!("#i_{attr}"), (*attr).to_owned());
                format!("#i_{attr}")
            }
            Self::Entry(kind, attr) => {
                names.insert("#o".to_owned(), OUTBOX.to_owned());
                names.insert("#k".to_owned(), (*kind).to_owned());
                names.insert(format!("#e_{attr}"), (*attr).to_owned());
                format!("#o.#k.#e_{attr}")
            }
        }
    }
}

fn invalid_path() -> StoreError {
    StoreError::Permanent {
        op: "UpdateItem",
        message: "the document path provided in the update expression is invalid for update".into(),
    }
}

/// One update of one path.
#[derive(Debug, Clone, PartialEq)]
enum Op<'a> {
    Set(Path<'a>, AttributeValue),
    /// `path = if_not_exists(path, 0) + 1`.
    AddOne(Path<'a>),
    /// `path = if_not_exists(path, value)`.
    Default(Path<'a>, AttributeValue),
    Remove(Path<'a>),
}

impl<'a> Op<'a> {
    fn path(&self) -> Path<'a> {
        match self {
            Self::Set(p, _) | Self::AddOne(p) | Self::Default(p, _) | Self::Remove(p) => *p,
        }
    }
}

/// A condition on an item (one that does not exist has no attributes).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cond<'a> {
    /// The attribute equals the value.
    Eq(Path<'a>, AttributeValue),
    /// The attribute equals one of the values.
    In(Path<'a>, Vec<AttributeValue>),
    /// The attribute does not exist.
    Missing(Path<'a>),
    /// The attribute is below the value (numbers by value, strings by their bytes).
    Less(Path<'a>, AttributeValue),
    /// Any of them holds.
    Any(Vec<Cond<'a>>),
    /// All of them hold.
    All(Vec<Cond<'a>>),
}

impl Cond<'_> {
    fn holds(&self, item: &Item) -> bool {
        match self {
            Self::Eq(p, v) => p.get(item) == Some(v),
            Self::In(p, vs) => p.get(item).is_some_and(|v| vs.contains(v)),
            Self::Missing(p) => p.get(item).is_none(),
            Self::Less(p, limit) => match (p.get(item), limit) {
                (Some(AttributeValue::N(a)), AttributeValue::N(b)) => {
                    match (a.parse::<f64>(), b.parse::<f64>()) {
                        (Ok(a), Ok(b)) => a < b,
                        _ => false,
                    }
                }
                (Some(AttributeValue::S(a)), AttributeValue::S(b)) => a.as_bytes() < b.as_bytes(),
                _ => false,
            },
            Self::Any(cs) => cs.iter().any(|c| c.holds(item)),
            Self::All(cs) => cs.iter().all(|c| c.holds(item)),
        }
    }

    fn render(
        &self,
        names: &mut HashMap<String, String>,
        values: &mut HashMap<String, AttributeValue>,
    ) -> String {
        fn value(values: &mut HashMap<String, AttributeValue>, v: AttributeValue) -> String {
            let ph = format!(":c{}", values.len());
            values.insert(ph.clone(), v);
            ph
        }
        match self {
            Self::Eq(p, v) => format!("{} = {}", p.render(names), value(values, v.clone())),
            Self::In(p, vs) => {
                let phs: Vec<String> = vs.iter().map(|v| value(values, v.clone())).collect();
                format!("{} IN ({})", p.render(names), phs.join(", "))
            }
            Self::Missing(p) => format!("attribute_not_exists({})", p.render(names)),
            Self::Less(p, limit) => {
                format!("{} < {}", p.render(names), value(values, limit.clone()))
            }
            Self::Any(cs) | Self::All(cs) => {
                let parts: Vec<String> = cs
                    .iter()
                    .map(|c| format!("({})", c.render(names, values)))
                    .collect();
                parts.join(if matches!(self, Self::Any(_)) {
                    " OR "
                } else {
                    " AND "
                })
            }
        }
    }
}

/// One conditional update of one follow-up's item: what it sets, bumps and removes, and the
/// conditions (all of them) it is made under.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Change<'a> {
    slot: Option<Slot<'a>>,
    ops: Vec<Op<'a>>,
    conds: Vec<Cond<'a>>,
}

impl<'a> Change<'a> {
    /// A transition of the follow-up in `slot`.
    pub(super) fn of(slot: Slot<'a>) -> Self {
        Self {
            slot: Some(slot),
            ops: Vec::new(),
            conds: Vec::new(),
        }
    }

    /// An update of item attributes only.
    pub(super) fn item() -> Self {
        Self {
            slot: None,
            ops: Vec::new(),
            conds: Vec::new(),
        }
    }

    fn at(&self, field: Field) -> Option<Path<'a>> {
        self.slot.and_then(|s| s.at(field))
    }

    /// Adds `op`; a later op on the same path replaces an earlier one (a sync's own check time
    /// is the item's).
    fn push(mut self, op: Option<Op<'a>>) -> Self {
        if let Some(op) = op {
            self.ops.retain(|o| o.path() != op.path());
            self.ops.push(op);
        }
        self
    }

    /// Sets `field` (nothing when this follow-up keeps no such attribute).
    pub(super) fn set(self, field: Field, v: AttributeValue) -> Self {
        let op = self.at(field).map(|p| Op::Set(p, v));
        self.push(op)
    }

    /// Sets item attribute `attr`.
    pub(super) fn set_item(self, attr: &'static str, v: AttributeValue) -> Self {
        self.push(Some(Op::Set(Path::Item(attr), v)))
    }

    /// `field = if_not_exists(field, 0) + 1`.
    pub(super) fn add_one(self, field: Field) -> Self {
        let op = self.at(field).map(Op::AddOne);
        self.push(op)
    }

    /// `attr = if_not_exists(attr, 0) + 1` on the item.
    pub(super) fn add_one_item(self, attr: &'static str) -> Self {
        self.push(Some(Op::AddOne(Path::Item(attr))))
    }

    /// `attr = if_not_exists(attr, v)` on the item: kept when it exists.
    pub(super) fn default_item(self, attr: &'static str, v: AttributeValue) -> Self {
        self.push(Some(Op::Default(Path::Item(attr), v)))
    }

    /// Bumps the item's revision: every lifecycle transition does (docs/DATA.md, `rev`).
    pub(super) fn bump_rev(self) -> Self {
        self.add_one_item(REV)
    }

    /// Removes `field`.
    pub(super) fn remove(self, field: Field) -> Self {
        let op = self.at(field).map(Op::Remove);
        self.push(op)
    }

    /// Removes item attribute `attr`.
    pub(super) fn remove_item(self, attr: &'static str) -> Self {
        self.push(Some(Op::Remove(Path::Item(attr))))
    }

    /// Made only when `cond` holds too.
    pub(super) fn when(mut self, cond: Cond<'a>) -> Self {
        self.conds.push(cond);
        self
    }

    /// The path of `field` of this follow-up, for a condition.
    pub(super) fn path(&self, field: Field) -> Path<'a> {
        // Conditions are only ever on fields every kind keeps.
        self.at(field).unwrap_or(Path::Item(PK))
    }

    /// Made only when `field` equals `v`.
    pub(super) fn when_eq(self, field: Field, v: AttributeValue) -> Self {
        let p = self.path(field);
        self.when(Cond::Eq(p, v))
    }

    /// Made only when the follow-up is in one of `statuses`.
    pub(super) fn when_status(self, statuses: &[ActionStatus]) -> Self {
        let p = self.path(Field::Status);
        self.when(Cond::In(
            p,
            statuses.iter().map(|st| s(st.as_str())).collect(),
        ))
    }

    /// Made only when nobody holds the lease at `now` (none, or it ended).
    pub(super) fn when_lease_free(self, now: i64) -> Self {
        let p = self.path(Field::LeaseUntil);
        self.when(Cond::Any(vec![Cond::Missing(p), Cond::Less(p, n(now))]))
    }

    /// True when every condition holds on `item` (`None`: no such item).
    pub(super) fn holds(&self, item: Option<&Item>) -> bool {
        let empty = Item::new();
        let item = item.unwrap_or(&empty);
        self.conds.iter().all(|c| c.holds(item))
    }

    /// Applies the updates to `item` (the in-memory double's `UpdateItem`).
    pub(super) fn apply(&self, item: &mut Item) -> Result<(), StoreError> {
        for op in &self.ops {
            let path = op.path();
            let parent = path.parent(item)?;
            match op {
                Op::Set(_, v) => {
                    parent.insert(path.attr().to_owned(), v.clone());
                }
                Op::AddOne(_) => {
                    let now = match parent.get(path.attr()) {
                        None => 0,
                        Some(AttributeValue::N(v)) => {
                            v.parse::<i64>().map_err(|_| StoreError::Permanent {
                                op: "UpdateItem",
                                message: format!("{} is not an integer", path.attr()),
                            })?
                        }
                        Some(_) => {
                            return Err(StoreError::Permanent {
                                op: "UpdateItem",
                                message: format!("{} is not a number", path.attr()),
                            });
                        }
                    };
                    parent.insert(path.attr().to_owned(), n(now.saturating_add(1)));
                }
                Op::Default(_, v) => {
                    parent
                        .entry(path.attr().to_owned())
                        .or_insert_with(|| v.clone());
                }
                Op::Remove(_) => {
                    parent.remove(path.attr());
                }
            }
        }
        Ok(())
    }

    /// The update and condition expressions, with their names and values.
    pub(super) fn render(&self) -> Rendered {
        let mut r = Rendered::default();
        let mut set = Vec::new();
        let mut remove = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            match op {
                Op::Set(p, v) => {
                    let ph = format!(":v{i}");
                    r.values.insert(ph.clone(), v.clone());
                    set.push(format!("{} = {ph}", p.render(&mut r.names)));
                }
                Op::AddOne(p) => {
                    r.values.insert(":zero".to_owned(), n(0));
                    r.values.insert(":one".to_owned(), n(1));
                    let p = p.render(&mut r.names);
                    set.push(format!("{p} = if_not_exists({p}, :zero) + :one"));
                }
                Op::Default(p, v) => {
                    let ph = format!(":v{i}");
                    r.values.insert(ph.clone(), v.clone());
                    let p = p.render(&mut r.names);
                    set.push(format!("{p} = if_not_exists({p}, {ph})"));
                }
                Op::Remove(p) => remove.push(p.render(&mut r.names)),
            }
        }
        let mut update = Vec::new();
        if !set.is_empty() {
            update.push(format!("SET {}", set.join(", ")));
        }
        if !remove.is_empty() {
            update.push(format!("REMOVE {}", remove.join(", ")));
        }
        r.update = update.join(" ");
        let conds: Vec<String> = self
            .conds
            .iter()
            .map(|c| format!("({})", c.render(&mut r.names, &mut r.values)))
            .collect();
        r.condition = (!conds.is_empty()).then(|| conds.join(" AND "));
        r
    }

    /// This change as one DynamoDB `UpdateItem` of item `pk`/`sk` of `store`'s table.
    fn request(&self, store: &EventStore, pk: &str, sk: &str) -> UpdateItemFluentBuilder {
        let r = self.render();
        store
            .client
            .update_item()
            .table_name(&store.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression(r.update)
            .set_condition_expression(r.condition)
            .set_expression_attribute_names(Some(r.names))
            .set_expression_attribute_values((!r.values.is_empty()).then_some(r.values))
    }
}

/// A [`Change`] as DynamoDB expressions.
#[derive(Debug, Default)]
pub(super) struct Rendered {
    /// `SET ... REMOVE ...`.
    pub update: String,
    /// The conditions, all of them, or none.
    pub condition: Option<String>,
    /// `#name` → attribute name.
    pub names: HashMap<String, String>,
    /// `:value` → value.
    pub values: HashMap<String, AttributeValue>,
}

/// What a transition leaves behind that only it writes: its `token` in `token` next to the
/// `status` it moves the follow-up in `slot` to.
pub(super) struct Stamp<'a> {
    pub(super) slot: Slot<'a>,
    pub(super) field: Field,
    pub(super) token: &'a str,
    pub(super) status: ActionStatus,
}

impl Stamp<'_> {
    /// True when `item` carries this stamp: the transition that wrote it was this one.
    pub(super) fn on(&self, item: &Item) -> bool {
        let text = |f: Field| {
            self.slot
                .at(f)
                .and_then(|p| p.get(item))
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
        };
        text(self.field) == Some(self.token) && text(Field::Status) == Some(self.status.as_str())
    }
}

/// How a conditional update ended.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Transition {
    /// Written, by this request or by its own earlier attempt whose answer was lost: the item as
    /// it is now (`ALL_NEW`, or `ALL_OLD` of the refused retry, which is the same item).
    Written(Item),
    /// Refused by its condition: the item as it was, when there was one.
    Refused(Option<Item>),
}

/// What runs a [`Change`]: DynamoDB's `UpdateItem` ([`EventStore`]) or the in-memory double.
/// Written: the item as it is after (`ALL_NEW`); refused: as it was (`ALL_OLD`).
pub(super) trait Updates: Sync {
    /// Runs `change` on item `pk`/`sk`.
    fn update(
        &self,
        pk: &str,
        sk: &'static str,
        change: &Change<'_>,
    ) -> impl Future<Output = Result<Transition, StoreError>> + Send;
    /// Now, ms.
    fn now_millis(&self) -> i64;
    /// How long after it is recorded or released a pending follow-up is due, ms.
    fn grace_ms(&self) -> i64;
}

impl Updates for EventStore {
    async fn update(
        &self,
        pk: &str,
        sk: &'static str,
        change: &Change<'_>,
    ) -> Result<Transition, StoreError> {
        let res = change
            .request(self, pk, sk)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(out) => Ok(Transition::Written(out.attributes.unwrap_or_default())),
            Err(e) if is_condition_failure(&e) => {
                Ok(Transition::Refused(match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => c.item().cloned(),
                    _ => None,
                }))
            }
            Err(e) => Err(dynamo_err("UpdateItem", e)),
        }
    }

    fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    fn grace_ms(&self) -> i64 {
        self.grace_ms
    }
}

/// Runs one conditional transition. A refusal that finds `stamp` on the item is the SDK's
/// retry meeting this transition's own write (its first answer was lost): written.
pub(super) async fn transition(
    store: &impl Updates,
    pk: &str,
    change: &Change<'_>,
    stamp: &Stamp<'_>,
) -> Result<Transition, StoreError> {
    transition_if(store, pk, change, stamp.status.as_str(), |item| {
        stamp.on(item)
    })
    .await
}

/// [`transition`] for a write whose own mark is not a token beside a status: `ours` says whether
/// the item a refused retry found is this write's own (`label` names it in the log line).
pub(super) async fn transition_if(
    store: &impl Updates,
    pk: &str,
    change: &Change<'_>,
    label: &str,
    ours: impl Fn(&Item) -> bool,
) -> Result<Transition, StoreError> {
    let sk = change.slot.map_or(ENTITY_SK, Slot::sk);
    match store.update(pk, sk, change).await? {
        Transition::Refused(Some(item)) if ours(&item) => {
            tracing::info!(
                status = label,
                "a retried transition found its own earlier write"
            );
            Ok(Transition::Written(item))
        }
        other => Ok(other),
    }
}

pub(super) fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    e: &aws_sdk_dynamodb::error::SdkError<E>,
) -> bool {
    e.as_service_error()
        .and_then(aws_sdk_dynamodb::error::ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_claim_renders_for_an_action_and_a_sync() {
        for (slot, prefix) in [(Slot::Action("receipt"), "#o.#k.#e_"), (Slot::Sync, "#i_")] {
            let r = Change::of(slot)
                .set(Field::Status, s("RUNNING"))
                .add_one(Field::Attempt)
                .set(Field::CheckAt, n(5))
                .set_item(PENDING_SK, n(5))
                .bump_rev()
                .when_status(&[ActionStatus::Pending, ActionStatus::Running])
                .when_lease_free(3)
                .render();
            assert!(
                r.update.starts_with(&format!("SET {prefix}")),
                "{}",
                r.update
            );
            let cond = r.condition.unwrap();
            assert!(cond.contains(" IN (:c"), "{cond}");
            assert!(cond.contains("attribute_not_exists("), "{cond}");
            // A sync's own check time is the item's: set once.
            let sets = r.update.matches("#i_next_check_at =").count();
            assert_eq!(sets, 1, "{}", r.update);
        }
    }

    #[test]
    fn a_change_holds_and_applies_like_its_expressions_say() {
        let mut item: Item = HashMap::from([(
            OUTBOX.to_owned(),
            AttributeValue::M(HashMap::from([(
                "receipt".to_owned(),
                AttributeValue::M(HashMap::from([
                    ("status".to_owned(), s("PENDING")),
                    ("attempt".to_owned(), n(0)),
                ])),
            )])),
        )]);
        let claim = Change::of(Slot::Action("receipt"))
            .set(Field::Status, s("RUNNING"))
            .set(Field::Lease, s("l1"))
            .set(Field::LeaseUntil, n(10))
            .add_one(Field::Attempt)
            .bump_rev()
            .when_status(&[ActionStatus::Pending, ActionStatus::Running])
            .when_lease_free(5);
        assert!(claim.holds(Some(&item)));
        claim.apply(&mut item).unwrap();
        let stamp = Stamp {
            slot: Slot::Action("receipt"),
            field: Field::Lease,
            token: "l1",
            status: ActionStatus::Running,
        };
        assert!(stamp.on(&item));
        assert_eq!(item.get(REV), Some(&n(1)));
        let at = Path::Entry("receipt", "attempt");
        assert_eq!(at.get(&item), Some(&n(1)));
        // Held until 10: not claimable at 5, claimable at 11.
        assert!(!claim.holds(Some(&item)));
        let later = Change::of(Slot::Action("receipt"))
            .when_status(&[ActionStatus::Running])
            .when_lease_free(11);
        assert!(later.holds(Some(&item)));
        assert!(!later.holds(None), "no item: no attributes");
        // An entry that does not exist cannot be updated.
        let other = Change::of(Slot::Action("welcome")).set(Field::Status, s("DONE"));
        assert!(other.apply(&mut item).is_err());
    }
}

//! The bank invariant: every committed read of all accounts sums to the total.
//!
//! Two shapes of read are understood: an `ok` transaction whose reads (`["r", account,
//! balance]`) cover every account that appears anywhere in the history's transactions, and an
//! `ok` `read` operation whose value is an object of account -> balance (Jepsen's bank shape).
//! A `null` balance counts as 0. Transfers are not checked individually: a lost or duplicated
//! transfer shows up as a wrong sum in the reads around it.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde_json::Value;

use crate::history::{History, Op, OpFn, Outcome};
use crate::report::{Anomaly, Validity, Verdict};

/// Anomalies of one kind kept in the verdict; the rest are counted in the last one kept.
const ANOMALIES_PER_KIND_MAX: usize = 16;

/// Checks that every ok read of all accounts sums to `total`.
pub fn check_bank(history: &History, total: i64) -> Verdict {
    let accounts = txn_accounts(history);
    let mut anomalies: Vec<Anomaly> = Vec::new();
    let mut dropped = 0usize;
    for op in history.ops.iter().filter(|op| op.outcome == Outcome::Ok) {
        let Some(balances) = read_of_all(op, &accounts) else { continue };
        let anomaly = match sum(&balances) {
            Err(account) => Anomaly {
                kind: "bank-bad-balance".to_string(),
                key: Some(account.clone()),
                txns: vec![op.id],
                explanation: format!(
                    "T{} read account {account} = {}, which is not an integer balance",
                    op.id, balances[&account]
                ),
            },
            Ok(s) if s != total => Anomaly {
                kind: "bank-sum".to_string(),
                key: None,
                txns: vec![op.id],
                explanation: format!(
                    "T{} (process {}, line {}) read {}, which sums to {s}, not the total {total}",
                    op.id,
                    op.process,
                    op.complete_line.unwrap_or(op.invoke_line),
                    render(&balances)
                ),
            },
            Ok(_) => continue,
        };
        if anomalies.len() < ANOMALIES_PER_KIND_MAX {
            anomalies.push(anomaly);
        } else {
            dropped += 1;
        }
    }
    if dropped > 0
        && let Some(last) = anomalies.last_mut()
    {
        last.explanation.push_str(&format!(" ({dropped} more bad reads not shown.)"));
    }
    let valid = if anomalies.is_empty() { Validity::Valid } else { Validity::Invalid };
    Verdict { valid, anomalies }
}

/// Every account named by a transaction micro-op anywhere in the history.
fn txn_accounts(history: &History) -> BTreeSet<String> {
    let mut accounts = BTreeSet::new();
    for op in history.ops.iter().filter(|op| op.f == OpFn::Txn) {
        for source in [Some(&op.value), op.result.as_ref()].into_iter().flatten() {
            for (_, account, _) in micro_ops(source) {
                accounts.insert(account);
            }
        }
    }
    accounts
}

/// The balances an ok operation read, if it read every account.
fn read_of_all<'a>(op: &'a Op, accounts: &BTreeSet<String>) -> Option<BTreeMap<String, &'a Value>> {
    let result = op.result.as_ref()?;
    match op.f {
        OpFn::Txn => {
            let mut read: BTreeMap<String, &Value> = BTreeMap::new();
            for (f, account, value) in micro_ops(result) {
                if f == "r" {
                    read.entry(account).or_insert(value);
                }
            }
            let all = !accounts.is_empty() && accounts.iter().all(|a| read.contains_key(a));
            all.then_some(read)
        }
        OpFn::Read => match result {
            Value::Object(map) if !map.is_empty() => {
                Some(map.iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            _ => None,
        },
        _ => None,
    }
}

/// `(f, account, value)` of each well-formed micro-op in a list; others are skipped.
fn micro_ops(list: &Value) -> impl Iterator<Item = (&str, String, &Value)> {
    list.as_array().into_iter().flatten().filter_map(|mop| {
        let [f, key, value] = mop.as_array()?.as_slice() else { return None };
        let account = match key {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some((f.as_str()?, account, value))
    })
}

/// The sum of the balances, or the first account whose balance is not an integer.
fn sum(balances: &BTreeMap<String, &Value>) -> Result<i64, String> {
    let mut s = 0i64;
    for (account, v) in balances {
        let b = match v {
            Value::Null => 0,
            other => other.as_i64().ok_or_else(|| account.clone())?,
        };
        s = s.saturating_add(b);
    }
    Ok(s)
}

fn render(balances: &BTreeMap<String, &Value>) -> String {
    let parts: Vec<String> = balances.iter().map(|(a, v)| format!("{a}={v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

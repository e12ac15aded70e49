//! `skip_name_resolve` against a policy that scopes or exempts by client address. With name
//! resolution on (MariaDB's and MySQL's default), the process list shows a TCP client's host
//! name (`localhost:55866`, or whatever reverse DNS says, which the client's network controls)
//! instead of its address, so curfew cannot place the session in any address block: it meets
//! no exemption by `addresses` (`local` included) and every rule scoped by `addresses` applies
//! to it. curfew fails closed, but the policy is then not enforced as written, which is a
//! failure, not a note: sessions the policy keeps are ended, and rules meant for one network
//! end sessions from others.

use curfew_policy::Policy;

use crate::{Finding, Status};

/// The requirement: the policy's address keys mean what they say.
const REQUIREMENT: &str = "curfew policy: `addresses` in [exempt] and rule scopes match the clients' addresses (NIST SP 800-171 3.1.11)";

/// Where the policy names addresses: each `[exempt]` key or `[[exempt]]` entry and rule that
/// does, by what the operator reads.
fn address_keys(policy: &Policy) -> Vec<String> {
    let exemptions = policy
        .exempt
        .entries
        .iter()
        .filter(|e| !e.scope.addresses.is_empty())
        .map(|e| e.by.to_string());
    let rules = policy
        .rules
        .iter()
        .filter(|r| !r.scope.addresses.is_empty())
        .map(|r| format!("rule \"{}\"", r.name));
    exemptions.chain(rules).collect()
}

/// The finding, from the server's `skip_name_resolve` (None: not read): pass when the policy
/// names no address or the server shows addresses; fail when it names some and the server
/// resolves names; unknown when the setting cannot be read.
pub(crate) fn finding(skip_name_resolve: Option<&str>, policy: &Policy) -> Finding {
    let keys = address_keys(policy);
    let setting = skip_name_resolve.map(|v| v.trim().to_ascii_uppercase());
    let resolves = setting.as_deref().map(|v| !matches!(v, "ON" | "1" | "YES"));
    let mut observed = vec![match &setting {
        Some(v) => format!("skip_name_resolve = {v}"),
        None => "skip_name_resolve: not read".to_owned(),
    }];
    observed.push(if keys.is_empty() {
        "the policy names no client address".to_owned()
    } else {
        format!("client addresses named by {}", keys.join(", "))
    });
    let (status, why, fix) = match (keys.is_empty(), resolves) {
        (true, _) | (false, Some(false)) => (Status::Pass, String::new(), String::new()),
        (false, None) => (
            Status::Unknown,
            String::new(),
            "Make skip_name_resolve readable to curfew's account (it is a global variable).".to_owned(),
        ),
        (false, Some(true)) => (
            Status::Fail,
            "with name resolution on, the server shows a TCP client's host name (e.g. localhost:55866, or whatever its reverse DNS says) instead of its address: curfew then places such a session in no address block, so no exemption by addresses applies to it (\"local\" included) and every rule scoped by addresses does".to_owned(),
            "Set skip_name_resolve = ON in the server's configuration ([mariadbd] or [mysqld] section; it needs a restart) and grant accounts by address instead of host name.".to_owned(),
        ),
    };
    Finding {
        id: "CURFEW-MARIADB-NAMES",
        title: "client addresses are shown, not host names, where the policy names addresses",
        requirement: REQUIREMENT,
        status,
        observed: observed.join("; "),
        expected: "skip_name_resolve = ON when the policy scopes or exempts by addresses"
            .to_owned(),
        why,
        fix,
    }
}

//! Login locks on a primary target, each tick: keep the window locks of `lock_logins` rules in
//! the ledger, let incident locks expire, record lock rows in the audit log, and bring every
//! role's login to what its locks say (disable, restore, or correct drift), each change with an
//! intent record before and an outcome after.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use curfew_audit::details::{LockRecord, LoginChangePlan, LoginChangeResult};
use curfew_audit::{Event, Intent, LoginChangeEnd, LoginChangeOutcome};
use curfew_backend::{BackendError, LedgerStatus, LockedRole, LoginChange, LoginLedger};
use curfew_policy::Rule;
use jiff::Timestamp;
use tokio::time::Instant;

use crate::events::{AgentEvent, LoginLock};
use crate::locked::{Locked, LockedSet};
use crate::records::{about, complete_all, intend_all, write};
use crate::shared::Shared;
use curfew_policy::LoadedPolicy;

/// What one round of lock keeping found.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    /// Roles whose sessions must end.
    pub(crate) locked: LockedSet,
    /// When a window opens or closes, or a lock expires (server clock).
    pub(crate) next_change: Option<Timestamp>,
    /// Every lock in force, for observers.
    pub(crate) locks: Vec<LoginLock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Lock,
    CorrectDrift,
    Restore,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Lock => "lock",
            Action::CorrectDrift => "correct drift on",
            Action::Restore => "restore",
        }
    }
}

/// Keeps one primary target's login locks.
pub(crate) struct Keeper {
    target: String,
    shared: Arc<Shared>,
    /// The ledger problem last reported (said once, until it changes or goes away).
    reported: Option<String>,
    /// Ledger failures in a row, and when to try again.
    failures: u32,
    not_before: Option<Instant>,
    /// The locked roles of the last round that read the ledger: their sessions keep being
    /// ended while the ledger cannot be read.
    last_locked: LockedSet,
    /// The locks in force as last read, for observers.
    last_locks: Vec<LoginLock>,
    /// Login changes the server refused, by role oid, and when to try again.
    refused: HashMap<u32, (u32, Instant)>,
    /// What a dry run already said it would do.
    noted: std::collections::HashSet<String>,
}

/// The longest wait between two attempts on a ledger that fails.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Keeper {
    pub(crate) fn new(target: String, shared: Arc<Shared>) -> Self {
        Self {
            target,
            shared,
            reported: None,
            failures: 0,
            not_before: None,
            last_locked: LockedSet::new(),
            last_locks: Vec::new(),
            refused: HashMap::new(),
            noted: std::collections::HashSet::new(),
        }
    }

    /// One round. Only a lost connection or lost leadership is an error; a ledger that is
    /// missing, unreadable or failing is one loud record (audit and error log), retried with a
    /// capped backoff, and never stops the ending of sessions. The ledger is read only when the
    /// policy has lock rules or the ledger holds something (incident locks, disabled logins);
    /// before that, one catalog query says whether it exists and may be used.
    /// Observers hear of the locks in force after every round (`LoginLocks`).
    pub(crate) async fn keep<L: LoginLedger>(
        &mut self,
        ledger: &mut L,
        loaded: &LoadedPolicy,
        now: Timestamp,
    ) -> Result<Kept, BackendError> {
        let kept = self.keep_round(ledger, loaded, now).await?;
        if self.shared.observed() {
            self.shared.emit(AgentEvent::LoginLocks {
                target: self.target.clone(),
                locks: kept.locks.clone(),
            });
        }
        Ok(kept)
    }

    async fn keep_round<L: LoginLedger>(
        &mut self,
        ledger: &mut L,
        loaded: &LoadedPolicy,
        now: Timestamp,
    ) -> Result<Kept, BackendError> {
        let policy = &loaded.policy;
        // Report-only rules record what they would do; they take no locks.
        let lock_rules: Vec<&Rule> = policy
            .rules
            .iter()
            .filter(|r| r.lock_logins && r.action == curfew_policy::Action::Terminate)
            .collect();
        let mut kept = Kept::default();
        for rule in &lock_rules {
            kept.next_change = earliest(
                kept.next_change,
                rule.login_window(now).and_then(|w| w.until),
            );
        }
        if self.not_before.is_some_and(|t| t > Instant::now()) {
            kept.locked = self.last_locked.clone();
            kept.locks = self.last_locks.clone();
            return Ok(kept);
        }
        let status = match ledger.ledger_status().await {
            Ok(status) => status,
            Err(e) => return self.failed(e, kept).await,
        };
        let problem = ledger.login_change_problem(&self.target, status, !lock_rules.is_empty());
        match problem {
            Some(problem) => self.report(problem).await,
            None => self.reported = None,
        }
        if !status.readable() {
            self.last_locked.clear();
            self.last_locks.clear();
            return Ok(kept);
        }
        let writable = status == LedgerStatus::Ready;
        let result = async {
            if lock_rules.is_empty() && !ledger.ledger_has_work().await? {
                return Ok(());
            }
            self.round(ledger, loaded, &lock_rules, now, &mut kept, writable)
                .await
        }
        .await;
        match result {
            Ok(()) => {
                self.failures = 0;
                self.not_before = None;
                self.last_locked = kept.locked.clone();
                self.last_locks = kept.locks.clone();
                Ok(kept)
            }
            Err(e) => self.failed(e, kept).await,
        }
    }

    /// A ledger failure: lost connection or leadership go up; anything else is reported once,
    /// and the ledger is left alone for a while (1 s, 2 s, 4 s ... up to a minute).
    async fn failed(&mut self, e: BackendError, mut kept: Kept) -> Result<Kept, BackendError> {
        if e.is_connection_lost() || e.is_not_leading() {
            return Err(e);
        }
        self.failures = self.failures.saturating_add(1);
        let wait = Duration::from_secs(1u64 << self.failures.min(6)).min(MAX_BACKOFF);
        self.not_before = Some(Instant::now() + wait);
        self.report(format!(
            "{e}; login locks are kept from the last reading of the ledger, tried again with backoff (up to {}s)",
            MAX_BACKOFF.as_secs()
        ))
        .await;
        tracing::debug!(target: "curfew::agent", "target \"{}\": ledger retried in {}s", self.target, wait.as_secs());
        kept.locked = self.last_locked.clone();
        kept.locks = self.last_locks.clone();
        Ok(kept)
    }

    /// Say a ledger problem loudly, once: an error log line and an audit record
    /// (`login_change_failed`, result `ledger_unavailable`). Repeats are logged at debug level.
    async fn report(&mut self, problem: String) {
        if self.reported.as_ref() == Some(&problem) {
            tracing::debug!(target: "curfew::agent", "{problem}");
            return;
        }
        tracing::error!(target: "curfew::agent", "{problem}");
        let mut record = about(Event::LoginChangeFailed, &self.target);
        record.reason = Some(problem.clone());
        record.result = Some("ledger_unavailable".to_owned());
        let _ = write(&self.shared, record).await;
        self.reported = Some(problem);
    }

    async fn round<L: LoginLedger>(
        &mut self,
        ledger: &mut L,
        loaded: &LoadedPolicy,
        lock_rules: &[&Rule],
        now: Timestamp,
        kept: &mut Kept,
        writable: bool,
    ) -> Result<(), BackendError> {
        let policy = &loaded.policy;
        // A dry run, or a ledger curfew may only read (made by an older curfew, or its
        // functions not granted), changes nothing: it reads the locks, so that the sessions
        // of locked roles are still ended (or, in a dry run, reported).
        let dry_run = self.shared.options.dry_run;
        let acting = writable && !dry_run;
        let mut roles = None;
        for rule in lock_rules {
            let Some(window) = rule.login_window(now) else {
                continue;
            };
            let covered: Vec<(u32, String)> = if window.locked {
                if roles.is_none() {
                    roles = Some(ledger.roles().await?);
                }
                covered_roles(
                    policy,
                    rule,
                    roles.as_deref().unwrap_or_default(),
                    ledger.own_role(),
                )
                .map(|r| (r.oid, r.name.clone()))
                .collect()
            } else {
                Vec::new()
            };
            if dry_run {
                for (_, name) in &covered {
                    self.dry_run_note(format!(
                        "dry run: rule \"{}\" would disable the login of role \"{name}\"",
                        rule.name
                    ));
                }
                continue;
            }
            if !acting {
                continue;
            }
            let reason = window_reason(rule);
            ledger
                .sync_window_locks(&rule.name, &covered, &reason)
                .await?;
        }
        if acting {
            let names: Vec<&str> = lock_rules.iter().map(|r| r.name.as_str()).collect();
            ledger.release_window_locks_except(&names).await?;
            ledger.expire_locks().await?;
            ledger.forget_dropped_roles().await?;
            self.announce(ledger).await?;
        }
        let roles_in_ledger = ledger.locked_roles().await?;
        // Forget refusals for roles that left the ledger.
        self.refused
            .retain(|oid, _| roles_in_ledger.iter().any(|r| r.oid == *oid));
        for role in roles_in_ledger {
            for lock in &role.locks {
                // A window lock lasts until its rule's window changes.
                let until = lock.expires_at.or_else(|| {
                    let rule = lock_rules
                        .iter()
                        .find(|r| lock.rule.as_deref() == Some(r.name.as_str()))?;
                    rule.login_window(now)?.until
                });
                kept.locks.push(LoginLock {
                    role: role.name.clone(),
                    kind: lock.kind.clone(),
                    rule: lock.rule.clone(),
                    reason: lock.reason.clone(),
                    created_by: lock.created_by.clone(),
                    since: lock.created_at,
                    until,
                });
            }
            if let Some(since) = role.locks.iter().map(|l| l.created_at).min() {
                for lock in &role.locks {
                    kept.next_change = earliest(kept.next_change, lock.expires_at);
                }
                kept.locked.insert(
                    role.name.clone(),
                    Locked {
                        reason: describe_locks(&role),
                        since,
                        incident: role.locks.iter().any(|l| l.kind == "incident"),
                    },
                );
            }
            if dry_run {
                if !role.locks.is_empty() && role.can_login {
                    self.dry_run_note(format!(
                        "dry run: would disable the login of locked role \"{}\"",
                        role.name
                    ));
                }
            } else if acting {
                self.reconcile(ledger, loaded, &role).await?;
            }
        }
        Ok(())
    }

    /// Say once what a dry run would have done to a login.
    fn dry_run_note(&mut self, note: String) {
        if self.noted.insert(note.clone()) {
            tracing::info!(target: "curfew::agent", "target \"{}\": {}", self.target, curfew_policy::visible(&note));
        }
    }

    /// Record lock rows created or released since the last round.
    async fn announce<L: LoginLedger>(&mut self, ledger: &mut L) -> Result<(), BackendError> {
        for (row, creation_recorded) in ledger.unannounced().await? {
            // A person's action carries its actor (and a release its reason) as JSON in the
            // ledger; the agent's own and expiry rows carry plain text.
            let created = curfew_audit::LedgerActor::from_ledger_text(&row.created_by);
            let released = row
                .released_by
                .as_deref()
                .and_then(curfew_audit::LedgerActor::from_ledger_text);
            let detail = LockRecord {
                lock_id: Some(row.id),
                role: Some(row.role_name.clone()),
                kind: Some(row.kind.clone()),
                rule: row.rule.clone(),
                created_by: Some(curfew_audit::actor::ledger_label(&row.created_by)),
                created_at: Some(row.created_at.to_string()),
                expires_at: row.expires_at.map(|t| t.to_string()),
                released_by: row
                    .released_by
                    .as_deref()
                    .map(curfew_audit::actor::ledger_label),
                released_at: row.released_at.map(|t| t.to_string()),
                actor: None,
                release_reason: None,
            };
            // A person's action names them (and a release, their reason).
            let with_actor = |actor: Option<&curfew_audit::LedgerActor>| match actor {
                Some(a) => LockRecord {
                    actor: Some(a.to_json()),
                    release_reason: a.reason.clone(),
                    ..detail.clone()
                },
                None => detail.clone(),
            };
            if !creation_recorded {
                let mut record = about(Event::LockCreated, &self.target);
                record.rule = row.rule.clone();
                record.reason = Some(format!("role \"{}\" locked: {}", row.role_name, row.reason));
                let record = record.with_details(&with_actor(created.as_ref()));
                if write(&self.shared, record).await.is_err() {
                    return Ok(());
                }
            }
            if row.released_at.is_some() {
                let mut record = about(Event::LockReleased, &self.target);
                record.rule = row.rule.clone();
                record.reason = Some(match &released {
                    Some(a) => format!(
                        "lock on role \"{}\" released by {}: {}",
                        row.role_name,
                        a.label(),
                        a.reason.as_deref().unwrap_or("no reason given")
                    ),
                    None => format!(
                        "lock on role \"{}\" released by {}",
                        row.role_name,
                        row.released_by.as_deref().unwrap_or("unknown")
                    ),
                });
                let record = record.with_details(&with_actor(released.as_ref()));
                if write(&self.shared, record).await.is_err() {
                    return Ok(());
                }
            }
            ledger.mark_announced(row.id).await?;
        }
        Ok(())
    }

    /// Bring one role's login to what its locks say.
    async fn reconcile<L: LoginLedger>(
        &mut self,
        ledger: &mut L,
        loaded: &LoadedPolicy,
        role: &LockedRole,
    ) -> Result<(), BackendError> {
        let action = match (
            !role.locks.is_empty(),
            role.can_login,
            role.disabled_by_curfew,
        ) {
            (true, true, false) => Action::Lock,
            (true, true, true) => Action::CorrectDrift,
            (false, _, true) => Action::Restore,
            _ => return Ok(()),
        };
        if let Some((_, not_before)) = self.refused.get(&role.oid)
            && *not_before > Instant::now()
        {
            return Ok(());
        }
        let reason = match action {
            Action::Lock => format!(
                "disable the login of role \"{}\": {}",
                role.name,
                describe_locks(role)
            ),
            Action::CorrectDrift => format!(
                "the login of locked role \"{}\" was enabled by someone else; disable it again: {}",
                role.name,
                describe_locks(role)
            ),
            Action::Restore => format!(
                "restore the login of role \"{}\": no lock remains",
                role.name
            ),
        };
        let plan = LoginChangePlan {
            action: action.word().to_owned(),
            role: role.name.clone(),
            role_oid: role.oid,
            locks: role.locks.iter().map(|l| l.id).collect(),
            policy_sha256: loaded.sha256.clone(),
        };
        let intent =
            Intent::<curfew_audit::LoginChange>::new(Timestamp::now(), &self.target, Some(&plan))
                .with_reason(reason.clone());
        // Nothing is done without a record (the login change needs the intent's token).
        let Some(intent) = intend_all(&self.shared, vec![intent])
            .await
            .ok()
            .and_then(|mut tokens| tokens.pop())
        else {
            return Ok(());
        };
        crate::fault::point("login.after-intent");
        let change = intent.authorize(role.oid);
        let result = match action {
            Action::Lock | Action::CorrectDrift => {
                ledger.disable_login(&change, &crate::fault::point).await
            }
            Action::Restore => ledger.restore_login(&change, &crate::fault::point).await,
        };
        let (end, error) = match &result {
            Ok(LoginChange::Disabled) => (LoginChangeEnd::Disabled, None),
            Ok(LoginChange::DriftCorrected) => (LoginChangeEnd::DriftCorrected, None),
            Ok(LoginChange::Restored) => (LoginChangeEnd::Restored, None),
            Ok(LoginChange::NotNeeded) => (LoginChangeEnd::NotNeeded, None),
            Ok(LoginChange::RoleGone) => (LoginChangeEnd::RoleDropped, None),
            Err(e) => (LoginChangeEnd::Failed, Some(e.to_string())),
        };
        let outcome = LoginChangeOutcome {
            end,
            detail: LoginChangeResult {
                role: Some(role.name.clone()),
                role_oid: Some(u64::from(role.oid)),
                error,
            },
        };
        let word = curfew_audit::Outcome::result(&outcome).to_owned();
        // Kept in memory by the writer if the log cannot take it now.
        let _ = complete_all(&self.shared, vec![(intent, outcome)]).await;
        match result {
            Ok(change) => {
                self.refused.remove(&role.oid);
                if !matches!(change, LoginChange::NotNeeded) {
                    tracing::info!(target: "curfew::agent", "target \"{}\": {} ({word})", self.target, curfew_policy::visible(&reason));
                }
                Ok(())
            }
            Err(e) if e.is_connection_lost() || e.is_not_leading() => Err(e),
            Err(e) => {
                let entry = self.refused.entry(role.oid).or_insert((0, Instant::now()));
                entry.0 += 1;
                let wait =
                    Duration::from_secs(1u64 << entry.0.min(8)).min(Duration::from_secs(300));
                entry.1 = Instant::now() + wait;
                tracing::error!(target: "curfew::agent", "{e}; retrying in {}s", wait.as_secs());
                Ok(())
            }
        }
    }
}

/// The roles a `lock_logins` rule locks: those its scope covers, except superusers (curfew does
/// not lock them), curfew's own role and roles the policy exempts.
pub fn covered_roles<'r>(
    policy: &'r curfew_policy::Policy,
    rule: &'r Rule,
    roles: &'r [curfew_backend::RoleInfo],
    own_role: &'r str,
) -> impl Iterator<Item = &'r curfew_backend::RoleInfo> + 'r {
    roles
        .iter()
        .filter(move |r| !r.superuser && r.name != own_role)
        .filter(move |r| policy.exempt.by_role(&r.name, &r.member_of).is_none())
        .filter(move |r| rule.covers_role(&r.name, &r.member_of))
}

/// Why a window rule locks logins, in words.
fn window_reason(rule: &Rule) -> String {
    let windows = rule
        .condition
        .schedule()
        .map(|s| {
            let list: Vec<&str> = s.windows().iter().map(|w| w.text.as_str()).collect();
            format!(
                "{} {}",
                list.join(", "),
                s.zone().iana_name().unwrap_or("UTC")
            )
        })
        .unwrap_or_default();
    match rule.condition.key() {
        "allow" => format!(
            "rule {}: outside the allowed windows ({windows})",
            rule.name
        ),
        _ => format!("rule {}: inside the deny window ({windows})", rule.name),
    }
}

/// All of a role's locks in words.
fn describe_locks(role: &LockedRole) -> String {
    role.locks
        .iter()
        .map(|l| match l.kind.as_str() {
            "incident" => {
                let until = l
                    .expires_at
                    .map(|t| format!(", until {t}"))
                    .unwrap_or_default();
                format!(
                    "incident lock by {}: {}{until}",
                    curfew_audit::actor::ledger_label(&l.created_by),
                    l.reason
                )
            }
            _ => l.reason.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

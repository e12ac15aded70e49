//! What a target's adapter cannot do, checked against the rules at every load (start,
//! reload, validate). Here, not in `target_url`, so the URL module need not know the model.

use crate::diagnostic::Collector;

/// What the rules need that a target's adapter cannot do: a `lock_logins` rule that ends
/// sessions is an error at the target's URL (its locks would silently not be kept), a
/// `member_of` rule a warning (it matches nothing there).
pub(super) fn check_limits(
    c: &mut Collector<'_>,
    targets: &[crate::model::Target],
    rules: &[crate::model::Rule],
) {
    for target in targets {
        let limits = target.url.limits;
        let name = crate::visible(&target.name);
        if let Some(why) = limits.no_login_locks
            && let Some(rule) = rules
                .iter()
                .find(|r| r.lock_logins && r.action == crate::model::Action::Terminate)
        {
            c.error(
                target.url.span.clone(),
                format!(
                    "target \"{name}\" {why} (rule \"{}\" has lock_logins = true); keep lock rules to policies whose targets can lock logins",
                    crate::visible(&rule.name)
                ),
            );
        }
        if let Some(why) = limits.no_role_memberships
            && let Some(rule) = rules.iter().find(|r| !r.scope.member_of.is_empty())
        {
            c.warning(
                target.url.span.clone(),
                format!(
                    "target \"{name}\" {why}: rule \"{}\"'s `member_of` matches no session there",
                    crate::visible(&rule.name)
                ),
            );
        }
    }
}

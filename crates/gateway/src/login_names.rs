//! The names a login gives, as the server will record them: the role a startup `user` names,
//! and the database and application name that rules' scopes match (as the agent reads them
//! from `pg_stat_activity`). The client chooses all three; the gateway only has to see the
//! same names the server will, so that a scope, a cap's count or an exemption places the
//! session where the agent does.

/// The longest name PostgreSQL keeps (`NAMEDATALEN - 1`): a longer startup `user` is cut to it
/// before the lookup, as the server does, so the gateway looks up (and mocks) the role the
/// server would log in.
const MAX_NAME_BYTES: usize = 63;

/// The role a startup `user` names: cut to [`MAX_NAME_BYTES`] at a character boundary.
pub(crate) fn role_name(user: &[u8]) -> String {
    let cut = match std::str::from_utf8(user) {
        Ok(text) => {
            let mut end = user.len().min(MAX_NAME_BYTES);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            end
        }
        Err(_) => user.len().min(MAX_NAME_BYTES),
    };
    String::from_utf8_lossy(&user[..cut]).into_owned()
}

/// An `application_name` as PostgreSQL 16 and later record it: every byte outside printable
/// ASCII written as `\xNN` (earlier servers write `?`), then cut to [`MAX_NAME_BYTES`].
/// Always ASCII, so it reaches the server's functions in any server encoding: a name the
/// server's encoding cannot hold would make the admission claim fail, and the login be judged
/// without its count.
pub(crate) fn application_name(raw: &[u8]) -> String {
    let mut clean = String::with_capacity(raw.len());
    for &byte in raw {
        if (32..=126).contains(&byte) {
            clean.push(char::from(byte));
        } else {
            clean.push_str(&format!("\\x{byte:02x}"));
        }
    }
    clean.truncate(MAX_NAME_BYTES);
    clean
}

/// The database and application name the server records for this login: an absent or empty
/// database is the role's name (PostgreSQL connects to it); the database is cut as the server
/// cuts names ([`role_name`]), the application name cleaned and cut ([`application_name`]).
/// The client chooses both: they only place the session in scopes, as they do for the agent.
/// (An `application_name` given in `options` instead, or set after the login, is not seen
/// here: the agent's next look sees it.)
pub(crate) fn database_and_application(
    params: &[(Vec<u8>, Vec<u8>)],
    role: &str,
) -> (String, String) {
    let value = |name: &[u8]| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_slice())
    };
    let database = value(b"database")
        .map(role_name)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| role.to_owned());
    let application = value(b"application_name")
        .map(application_name)
        .unwrap_or_default();
    (database, application)
}

#[cfg(test)]
#[path = "login_names_tests.rs"]
mod tests;

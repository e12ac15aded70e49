//! How an exchange fails. Internally every cause is kept apart (for the gateway's log); towards
//! the client they all read the same.

/// A SCRAM message that does not follow RFC 5802's syntax as PostgreSQL reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not UTF-8.
    #[error("the message is not UTF-8")]
    NotUtf8,
    /// Contains a NUL byte.
    #[error("the message contains a NUL byte")]
    Nul,
    /// An expected attribute is missing or out of order.
    #[error("expected attribute '{0}'")]
    Expected(char),
    /// Not a `name=value` attribute.
    #[error("not an attribute")]
    Attribute,
    /// A `,` with nothing after it.
    #[error("a trailing comma")]
    TrailingComma,
    /// The GS2 header is not `n,`, `y,` or `p=<type>,`.
    #[error("malformed GS2 header")]
    Gs2Header,
    /// An authorization identity (`a=`), which PostgreSQL does not support.
    #[error("an authorization identity is not supported")]
    AuthorizationIdentity,
    /// A mandatory extension (`m=`), which nobody supports.
    #[error("a mandatory extension (m=) is not supported")]
    MandatoryExtension,
    /// A nonce that is empty or has characters outside printable ASCII, or a comma.
    #[error("invalid nonce")]
    Nonce,
    /// Not base64, or not the expected length once decoded.
    #[error("invalid base64 in attribute '{0}'")]
    Base64(char),
    /// The iteration count is not a number in range.
    #[error("invalid iteration count")]
    Iterations,
    /// Bytes after the last attribute the message may have.
    #[error("garbage at the end of the message")]
    Garbage,
}

/// Why the server side refused the client. The gateway logs this (with the role) and sends the
/// client [`AuthFailure::client_message`], the same for every cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// A message did not parse.
    #[error("malformed SCRAM message: {0}")]
    Malformed(#[from] Malformed),
    /// The client asked for a mechanism the gateway did not offer.
    #[error("the client chose a SASL mechanism that was not offered")]
    Mechanism,
    /// The client supports channel binding but thinks the server does not, although the server
    /// offered SCRAM-SHA-256-PLUS: a downgrade (RFC 5802 §6).
    #[error(
        "the client sent 'y' although SCRAM-SHA-256-PLUS was offered: channel binding downgrade"
    )]
    Downgrade,
    /// The GS2 header does not agree with the mechanism: `p=` without `-PLUS` or `n`/`y` with
    /// it.
    #[error("the channel-binding flag does not match the chosen mechanism")]
    ChannelBindingFlag,
    /// A channel-binding type other than `tls-server-end-point`.
    #[error("unsupported channel-binding type")]
    ChannelBindingType,
    /// The client-final's `c=` is not the GS2 header and this connection's binding data.
    #[error("the channel-binding data does not match this connection")]
    ChannelBindingData,
    /// The client-final's nonce is not the one the server sent.
    #[error("the client-final nonce does not match")]
    Nonce,
    /// The proof does not match the verifier: a wrong password (or a changed one).
    #[error("the client's proof is wrong")]
    WrongProof,
    /// The role has no usable verifier (unknown, no login, MD5): a mock exchange, failed as
    /// PostgreSQL fails a doomed one.
    #[error("the role cannot authenticate with SCRAM (mock exchange)")]
    MockRole,
}

impl AuthFailure {
    /// The SQLSTATE the client gets for every failure: `invalid_password`.
    pub const SQLSTATE: &'static str = "28P01";

    /// What the client is told, whatever the cause: PostgreSQL's own message for a failed
    /// password, so no cause (a malformed message, a mock role, a wrong proof) can be told
    /// apart from another. `role` is the user name the client itself sent.
    pub fn client_message(&self, role: &str) -> String {
        format!("password authentication failed for user \"{role}\"")
    }
}

/// Why the client side (towards PostgreSQL) failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A message from the server did not parse.
    #[error("malformed SCRAM message from the server: {0}")]
    Malformed(#[from] Malformed),
    /// The server offered no SCRAM-SHA-256 mechanism curfew can use.
    #[error("the server offers no usable SASL mechanism (SCRAM-SHA-256 required)")]
    NoMechanism,
    /// The server's nonce does not start with ours.
    #[error("the server's nonce does not extend the client's")]
    Nonce,
    /// The server's salt or iteration count differs from the verifier's: the password changed
    /// between fetching the verifier and this login.
    #[error(
        "the server's salt or iteration count differs from the verifier fetched for the role: its password changed meanwhile"
    )]
    PasswordChanged,
    /// The server answered with `e=`.
    #[error("the server refused the exchange: {0}")]
    Server(String),
    /// The server's signature is wrong: it does not know the role's ServerKey.
    #[error("the server's signature is wrong: it is not the server holding this verifier")]
    ServerSignature,
    /// No nonce could be generated.
    #[error(transparent)]
    Random(#[from] crate::nonce::NonceError),
}

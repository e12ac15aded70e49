//! An in-memory server that implements the whole contract: the reference implementation of the
//! neutral traits, for testing a loop without a database (not a copy of any database's
//! behaviour: what it does is what the traits' documentation says).
//!
//! - Sessions are added, changed and removed by the test ([`MemoryServer::login`],
//!   [`MemoryServer::statement`], [`MemoryServer::change`], [`MemoryServer::remove`]).
//! - The server's clock follows tokio's: with paused time, `tokio::time::advance` moves it too
//!   ([`MemoryServer::now`]); a skew puts it ahead of or behind the agent's.
//! - Ends honour exactly the end request: identity, idle state and since, not-before, keepers,
//!   and the fence; a signalled session exits after a chosen delay (or never).
//! - Coordination: one leader lock, which a connection takes or loses, and which another holder
//!   (a replica, a squatter) can take ([`MemoryServer::take_leadership`]).
//! - A login ledger, an anchor store, and scripted failures for the calls to come
//!   ([`MemoryServer::script`]); every call is logged ([`MemoryServer::calls`]).

mod connection;
mod ledger;
mod script;
mod server;
mod state;
#[cfg(test)]
mod tests;

pub use connection::{MemoryConnection, MemoryConnector};
pub use script::{Call, CallName, Fault, Request};
pub use server::MemoryServer;
pub use state::{Anchored, MemoryError};

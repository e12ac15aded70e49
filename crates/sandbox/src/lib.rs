//! Throwaway local PostgreSQL clusters for curfew's demo, integration tests
//! and benchmarks, and throwaway MariaDB servers ([`MariaDbServer`]) for the
//! MariaDB adapter's tests.
//!
//! A [`Cluster`] runs `initdb` into a fresh directory under the system
//! temporary directory, starts the server with `pg_ctl` on a free loopback
//! port with its own Unix socket directory, and removes everything again when
//! dropped. When the current process runs as root (which `initdb` refuses),
//! the server runs as the `postgres` operating-system user instead.
//!
//! ```no_run
//! # fn main() -> Result<(), curfew_sandbox::SandboxError> {
//! let cluster = curfew_sandbox::Cluster::start(curfew_sandbox::Options::default())?;
//! assert_eq!(cluster.psql("select 1")?, "1");
//! let url = cluster.url("postgres", "postgres");
//! # let _ = url;
//! # Ok(())
//! # }
//! ```

mod binaries;
mod cluster;
mod config;
mod error;
mod mariadb;
mod mariadb_binaries;
mod options;
mod pki;
mod process;
mod workdir;

pub use binaries::{PG_BIN_ENV, find_binaries};
pub use cluster::Cluster;
pub use error::SandboxError;
pub use mariadb::{MariaDbOptions, MariaDbServer};
pub use mariadb_binaries::{MARIADB_BIN_ENV, MariaDbPrograms, find_mariadb};
pub use options::{Auth, Options, TlsFiles};
pub use pki::TestPki;

//! `curfew`: ends database sessions when an organization-defined condition occurs, and proves it
//! did. This binary parses the command line and turns results into output and exit codes; the
//! work is done by the library crates.

mod commands;
mod databases;
mod exit;
mod logging;
mod policy_file;
mod steps;
mod table;
mod when;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "curfew",
    version,
    about = "End database sessions when an organization-defined condition occurs, and prove it did.",
    long_about = "curfew ends PostgreSQL sessions automatically when a condition in its policy occurs \
                  (inactivity, an abandoned transaction, a session lifetime, hours outside a working \
                  window, a maintenance window, too many sessions) and records each termination. It \
                  implements NIST SP 800-171 3.1.11 / SP 800-53 AC-12 and DISA STIG V-261910.",
    after_help = "Exit codes: 0 ok, 1 runtime failure, 2 usage or policy error, 3 a check failed.\n\n\
                  Examples:\n  \
                  curfew validate -c /etc/curfew/curfew.toml\n  \
                  curfew explain --format md > session-termination.md"
)]
pub(crate) struct Cli {
    /// The policy file ("-" reads standard input).
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        default_value = "curfew.toml",
        value_name = "FILE"
    )]
    config: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the policy file; print each rule, or every error with its line and column.
    #[command(
        after_help = "Exit code 0 when the policy is valid (warnings are printed but \
                            accepted), 2 when it is not.\n\n\
                            Examples:\n  \
                            curfew validate\n  \
                            curfew validate -c examples/curfew.toml\n  \
                            curfew -c /etc/curfew/curfew.toml validate --quiet && systemctl reload curfew"
    )]
    Validate(commands::validate::Args),

    /// Write the policy's conditions as a document a system security plan can quote.
    #[command(
        after_help = "The document names the policy file and its SHA-256, so an assessor can \
                            tie it to the file deployed.\n\n\
                            Examples:\n  \
                            curfew explain > conditions.md\n  \
                            curfew explain -c /etc/curfew/curfew.toml --format json | jq '.rules[].statement'"
    )]
    Explain(commands::explain::Args),

    /// Write the policy as native database settings (PostgreSQL or Oracle): defense in depth.
    #[command(after_help = "PostgreSQL: ALTER ROLE ... SET idle_session_timeout / \
                            idle_in_transaction_session_timeout and CONNECTION LIMIT, in one \
                            transaction that expands role patterns and memberships when applied. \
                            Users can override these settings in their own sessions, which is why \
                            the agent exists. Oracle: profiles (IDLE_TIME, CONNECT_TIME, \
                            SESSIONS_PER_USER, rounded up to whole minutes), ALTER USER ... PROFILE, \
                            RESOURCE_LIMIT and the sqlnet.ora lines. Each rule that cannot be \
                            expressed natively gets a comment saying why.\n\n\
                            Examples:\n  \
                            curfew compile --dialect postgres -o curfew-native.sql\n  \
                            psql -v ON_ERROR_STOP=1 -f curfew-native.sql\n  \
                            curfew compile -c /etc/curfew/curfew.toml --dialect oracle > curfew-oracle.sql")]
    Compile(commands::compile::Args),

    /// Show what would happen now (or at --at) to each live session on each target.
    #[command(
        after_help = "Connects to each target, reads its sessions once, and shows for each \
                            session the rule that will end it and in how long, or why it is \
                            exempt. Nothing is ended.\n\n\
                            Examples:\n  \
                            curfew plan\n  \
                            curfew plan --target primary --at +2h\n  \
                            curfew plan --at \"2026-11-23 19:05 America/New_York\" --format json"
    )]
    Plan(commands::plan::Args),

    /// Check each target's configuration against the session-termination requirement and
    /// the hardening items of the security guide.
    #[command(
        after_help = "Reads the live settings, the pg_hba.conf rules the server loaded and the \
                            roles, and whether a curfew agent leads the server. Each finding has an \
                            ID, the requirement it comes from (DISA STIG V-261910, the PostgreSQL \
                            security guide, the Oracle STIG's analogues), what was observed, what \
                            is expected and a fix. Exit 0 when nothing failed, 3 when a finding \
                            failed. Reading pg_hba_file_rules needs a grant the finding names.\n\n\
                            Examples:\n  \
                            curfew check\n  \
                            curfew check --target primary --format json > check.json"
    )]
    Check(commands::check::Args),

    /// Test the control live: canary sessions and roles in each rule's scope, left to the agent.
    #[command(
        after_help = "Each rule is LIVE PASS, EVALUATED (not a live proof), NOT TESTED or \
                            FAIL, with why. Tested live with temporary canary roles in each \
                            rule's scope: idle, idle-in-transaction and lifetime rules whose limit \
                            (or [verify] test_limit, said so) is at most --max-wait, waited out \
                            with PostgreSQL's own timeouts switched off; window rules at an edge \
                            6s ahead carried in the canary's name (an override that only ends \
                            that canary earlier); session caps with one session more than the \
                            cap; and login locks (a canary role locked through the ledger as \
                            curfew lock does, a login refused, unlocked, a login that works). A \
                            live test passes when the running agent did it and the audit log \
                            holds its record. With a [gateway] (--through both, the default; \
                            direct or gateway for one), canaries also log in through the \
                            gateway: its idle, idle-in-transaction, lifetime and violations rules pass \
                            when the client received the gateway's FATAL naming the rule at the \
                            expected moment, reported apart. Rules no canary can enter (roles named exactly, \
                            ...) or over --max-wait are evaluated at their boundaries. --full \
                            waits configured limits instead of test_limit. Canary roles are \
                            dropped at the end. Needs CREATEROLE for curfew's role (and ADMIN \
                            OPTION on member_of groups on PostgreSQL 16+). The result is \
                            recorded as control_verified with the policy's hash. Exit 0 when \
                            nothing failed, 3 when a test failed.\n\n\
                            Examples:\n  \
                            curfew verify\n  \
                            curfew verify --target primary --max-wait 20m --format json > verify.json\n  \
                            curfew verify --through gateway"
    )]
    Verify(commands::verify::Args),

    /// Write the assessor's evidence report: conditions, policy history, terminations, locks,
    /// the latest check and verify results, and the audit chain's verification.
    #[command(
        after_help = "Reads the policy file and the audit log (audit_log in [agent], or \
                            --audit-log) and writes one document: the conditions as `curfew explain` \
                            states them, every policy hash loaded, sessions ended by rule and by day \
                            (a chart in the HTML), locks with their reasons, the latest \
                            `curfew check` and `curfew verify` result per target, and whether the \
                            audit chain verifies. The HTML is one self-contained file (no scripts, \
                            no external assets) that prints cleanly.\n\n\
                            Examples:\n  \
                            curfew report -o curfew-report.html\n  \
                            curfew report --since 90d --format md > evidence.md\n  \
                            curfew report --since 2026-10-01 --format json | jq .terminations"
    )]
    Report(commands::report::Args),

    /// Enforce the policy on every target until stopped.
    #[command(
        after_help = "Reads each target's sessions at least every [agent] interval and at \
                            each deadline, ends the sessions the policy says must end, and records \
                            each action in the audit log (an intent before, an outcome after). \
                            SIGHUP reloads the policy (an invalid file leaves the running one in \
                            force); SIGTERM or Ctrl-C stop cleanly. Logs go to standard error; \
                            filter them with CURFEW_LOG=debug. With `listen` in [agent] (or \
                            --listen) it serves a status page, /status, /metrics and /healthz.\n\n\
                            Examples:\n  \
                            curfew agent -c /etc/curfew/curfew.toml\n  \
                            curfew agent --dry-run --audit-log ./dry-run.jsonl\n  \
                            curfew agent --log-format json --listen 127.0.0.1:9187"
    )]
    Agent(commands::agent::Args),

    /// Serve the policy's [gateway]: PostgreSQL clients through curfew, SCRAM end to end.
    #[command(
        after_help = "Listens on [gateway] listen (127.0.0.1:6432 by default) and relays each \
                            client to its own session on the [gateway] target, as the client's own \
                            role: SCRAM-SHA-256 with the client against the role's verifier, which \
                            the gateway fetches through curfew.gateway_secret (installed by curfew \
                            init) as the user of auth_url; TLS with tls_cert and tls_key \
                            (require_tls refuses plaintext clients). Ctrl-C stops accepting clients \
                            and waits for the sessions to end.\n\n\
                            Examples:\n  \
                            curfew gateway -c /etc/curfew/curfew.toml\n  \
                            psql \"host=127.0.0.1 port=6432 user=alice sslmode=require\""
    )]
    Gateway(commands::gateway::Args),

    /// As an administrator, install curfew's login-lock ledger and its functions on each primary.
    #[command(
        after_help = "Run once per primary by a superuser (or, on managed PostgreSQL, the \
                            provider's admin role), and again after upgrading curfew. It creates \
                            the schema curfew owned by the NOLOGIN role curfew_owner, the functions \
                            through which curfew's role changes logins (it needs no CREATEROLE), and \
                            grants that role (--agent-role, default the user in the target's URL) \
                            their use and the reading of the ledger. An older ledger keeps its rows.\n\n\
                            Examples:\n  curfew init --admin-user postgres\n  \
                            curfew init --target primary --admin-user admin --admin-password-file /root/admin_pw"
    )]
    Init(commands::locks::InitArgs),

    /// Lock a role out now: end its sessions on every target and disable its login.
    #[command(
        after_help = "Records an incident lock in the ledger of each primary target (with \
                            who and why) and waits for the running agent to apply it: the login is \
                            disabled in the same transaction as the ledger entry, and the role's \
                            sessions are ended on primaries and standbys. A role that was NOLOGIN \
                            before stays NOLOGIN after. Lift it with `curfew unlock`, or let \
                            --until lift it.\n\n\
                            Examples:\n  \
                            curfew lock analyst_kim --reason \"INC-4711: credentials leaked\"\n  \
                            curfew lock etl_user --reason \"runaway job\" --until +2h"
    )]
    Lock(commands::locks::LockArgs),

    /// Lift the incident lock on a role (its login comes back unless another lock remains).
    #[command(
        after_help = "--reason is required. Who lifted the lock is the user of this process's \
                            real uid (not $USER) and the database role curfew connected as; both \
                            are recorded with the reason.\n\n\
                            Examples:\n  curfew unlock analyst_kim --reason \"INC-4711 closed\""
    )]
    Unlock(commands::locks::UnlockArgs),

    /// List the login locks in force: role, reason, who, when, expiry, login state.
    #[command(after_help = "Examples:\n  curfew locks\n  curfew locks --all")]
    Locks(commands::locks::ListArgs),

    /// Check or read an audit log.
    #[command(subcommand)]
    Audit(commands::audit::Command),

    /// Measure curfew: lateness, cost and scale, next to PostgreSQL's own idle_session_timeout.
    #[command(
        after_help = "Starts a throwaway cluster and, for each number of concurrent sessions, \
                            runs curfew agent (as its own process) over them: half go idle at \
                            staggered moments, half keep running statements. It measures how late \
                            each idle session ends (deadline on the server clock to the client \
                            seeing its connection close), the agent's snapshots per second, CPU and \
                            peak memory, the server CPU its queries cost, wrong and missed \
                            terminations; then the same load under idle_session_timeout; a \
                            one-minute cron sweep is computed from the same deadlines; and the \
                            engine's evaluation time at 1k to 100k sessions.\n\n\
                            Examples:\n  \
                            curfew bench --quick\n  \
                            curfew bench --sessions 100,500,2000 --json bench.json\n  \
                            curfew bench gateway --quick   (the gateway next to PgBouncer)"
    )]
    Bench(commands::bench::Args),

    /// See curfew work: a throwaway PostgreSQL cluster, realistic sessions, live terminations.
    #[command(
        after_help = "Starts a local PostgreSQL cluster (initdb on a free loopback port, removed at \
                            the end), creates the three-role pattern (appowner, appuser, backupuser) and \
                            human analysts, opens sessions (idle, a forgotten transaction, one over the \
                            session limit, a long-running one, the application's pool, a backup), runs the \
                            agent on a short-fused policy and shows each termination as it happens, then a \
                            summary and the audit log's verification. Takes about 20 seconds. Needs \
                            PostgreSQL server binaries (apt-get install postgresql, or CURFEW_PG_BIN).\n\n\
                            Examples:\n  \
                            curfew demo\n  \
                            curfew demo --keep ./demo && curfew audit show ./demo/audit.jsonl"
    )]
    Demo(commands::demo::Args),

    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    #[command(after_help = "Examples:\n  \
                            curfew completions bash > /etc/bash_completion.d/curfew\n  \
                            curfew completions zsh > \"${fpath[1]}/_curfew\"\n  \
                            curfew completions fish > ~/.config/fish/completions/curfew.fish")]
    Completions(commands::packaging::CompletionsArgs),

    /// Print the manual page curfew(1), or write every command's page into a directory;
    /// with --policy, the policy file's page curfew.toml(5).
    #[command(after_help = "Examples:\n  \
                            curfew man | man -l -\n  \
                            curfew man --out-dir /usr/local/share/man/man1\n  \
                            curfew man --policy --out-dir /usr/local/share/man/man5\n  \
                            curfew man --policy | man -l -")]
    Man(commands::packaging::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Validate(args) => commands::validate::run(&cli.config, args),
        Command::Explain(args) => commands::explain::run(&cli.config, args),
        Command::Compile(args) => commands::compile::run(&cli.config, args),
        Command::Plan(args) => commands::plan::run(&cli.config, args),
        Command::Check(args) => commands::check::run(&cli.config, args),
        Command::Verify(args) => commands::verify::run(&cli.config, args),
        Command::Report(args) => commands::report::run(&cli.config, args),
        Command::Agent(args) => commands::agent::run(&cli.config, args),
        Command::Gateway(args) => commands::gateway::run(&cli.config, args),
        Command::Audit(command) => commands::audit::run(&cli.config, command),
        Command::Init(args) => commands::locks::init(&cli.config, args),
        Command::Lock(args) => commands::locks::lock(&cli.config, args),
        Command::Unlock(args) => commands::locks::unlock(&cli.config, args),
        Command::Locks(args) => commands::locks::list(&cli.config, args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Completions(args) => commands::packaging::completions(args),
        Command::Man(args) => commands::packaging::man(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn time_arguments_may_start_with_a_dash() {
        for args in [
            &["curfew", "report", "--since", "-30m"][..],
            &["curfew", "plan", "--at", "-30m"],
            &[
                "curfew",
                "audit",
                "show",
                "audit.jsonl",
                "--since",
                "-30m",
                "--until",
                "-5m",
            ],
            &["curfew", "lock", "kim", "--reason", "x", "--until", "+2h"],
        ] {
            if let Err(e) = Cli::try_parse_from(args) {
                panic!("{args:?}: {e}");
            }
        }
    }

    #[test]
    fn config_is_accepted_before_and_after_the_subcommand() {
        let before = Cli::try_parse_from(["curfew", "-c", "a.toml", "validate"]).unwrap();
        let after = Cli::try_parse_from(["curfew", "validate", "--config", "a.toml"]).unwrap();
        assert_eq!(before.config, PathBuf::from("a.toml"));
        assert_eq!(after.config, PathBuf::from("a.toml"));
        let default = Cli::try_parse_from(["curfew", "explain"]).unwrap();
        assert_eq!(default.config, PathBuf::from("curfew.toml"));
    }
}

//! Asynchronous messages and FunctionCall through the gateway, each checked direct first:
//! LISTEN/NOTIFY delivered to an idle listener from a sender direct or through the gateway,
//! and large objects by libpq's `lo_*` (FunctionCall, `'F'`) via psql's `\lo_import` and
//! `\lo_export`, and by the SQL functions via tokio-postgres.

mod common;

use std::time::Duration;

use common::clients::{Endpoint, psql, run};
use common::{ALICE_PASSWORD, Harness, Setup};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_postgres::config::{ChannelBinding, SslMode};
use tokio_postgres::{AsyncMessage, Client, Notification};

/// alice's session to `endpoint` over TLS, and the notifications its connection receives, read
/// as they arrive (not only after a query). Channel binding is only preferred:
/// tokio-postgres-rustls computes no binding data (the libpq clients here require it).
async fn listening_session(
    harness: &Harness,
    endpoint: Endpoint,
) -> (Client, mpsc::UnboundedReceiver<Notification>) {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(endpoint.port)
        .user("alice")
        .password(ALICE_PASSWORD)
        .dbname("postgres")
        .ssl_mode(SslMode::Require)
        .channel_binding(ChannelBinding::Prefer)
        .connect_timeout(Duration::from_secs(10));
    let (client, mut connection) = config
        .connect(harness.tls_connector())
        .await
        .unwrap_or_else(|e| panic!("{endpoint:?}: login: {e}"));
    let (sender, notifications) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(notification) = message {
                let _ = sender.send(notification);
            }
        }
    });
    (client, notifications)
}

async fn backend_pid(client: &Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0)
}

async fn next(
    notifications: &mut mpsc::UnboundedReceiver<Notification>,
    context: &str,
) -> Notification {
    tokio::time::timeout(Duration::from_secs(10), notifications.recv())
        .await
        .unwrap_or_else(|_| panic!("{context}: no notification within 10 s"))
        .unwrap_or_else(|| panic!("{context}: the listener's connection ended"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_listener_receives_notifications_from_either_side() {
    let harness = Harness::start("notify", Setup::default()).await;
    let channel = "curfew \"channel\" é";
    for listener_at in harness.endpoints() {
        let (listener, mut notifications) = listening_session(&harness, listener_at).await;
        let listener_pid = backend_pid(&listener).await;
        listener
            .batch_execute("LISTEN \"curfew \"\"channel\"\" é\"")
            .await
            .expect("LISTEN");
        for sender_at in harness.endpoints() {
            let context = format!(
                "listener {} ← sender {}{}",
                listener_at.name,
                sender_at.name,
                if listener_at.name == "gateway" || sender_at.name == "gateway" {
                    " (works direct, fails through the gateway)"
                } else {
                    ""
                }
            );
            let (sender, _) = listening_session(&harness, sender_at).await;
            let sender_pid = backend_pid(&sender).await;
            // The listener has been idle since its last ReadyForQuery: delivery is asynchronous.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let payload = format!("from {} to {} ✓", sender_at.name, listener_at.name);
            sender
                .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                .await
                .expect("pg_notify");
            let got = next(&mut notifications, &context).await;
            assert_eq!(
                (got.channel(), got.payload(), got.process_id()),
                (channel, payload.as_str(), sender_pid),
                "{context}"
            );

            // The largest payload the server takes (7999 bytes).
            let largest = "p".repeat(7999);
            sender
                .execute("SELECT pg_notify($1, $2)", &[&channel, &largest])
                .await
                .expect("pg_notify");
            let got = next(&mut notifications, &context).await;
            assert_eq!(got.payload(), largest, "{context}");

            // Inside a transaction: nothing before COMMIT, then all of them in order.
            sender.batch_execute("BEGIN").await.expect("BEGIN");
            for n in 0..200 {
                sender
                    .execute("SELECT pg_notify($1, $2)", &[&channel, &format!("{n:03}")])
                    .await
                    .expect("pg_notify");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                notifications.try_recv().is_err(),
                "{context}: delivered before COMMIT"
            );
            sender.batch_execute("COMMIT").await.expect("COMMIT");
            for n in 0..200 {
                let got = next(&mut notifications, &context).await;
                assert_eq!(got.payload(), format!("{n:03}"), "{context}");
            }
        }
        // The listener hears itself after its own statement, and is still the same session.
        listener
            .batch_execute("NOTIFY \"curfew \"\"channel\"\" é\", 'self'")
            .await
            .expect("NOTIFY");
        let got = next(&mut notifications, listener_at.name).await;
        assert_eq!((got.payload(), got.process_id()), ("self", listener_pid));
        assert_eq!(backend_pid(&listener).await, listener_pid);
    }
}

/// Some MB of bytes that are neither text nor compressible, with runs of zeros and 0xff
/// (xorshift, fixed seed).
fn blob(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|i| match (i / 4096) % 7 {
            3 => 0,
            5 => 0xff,
            _ => {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lo_import_and_export_round_trip_a_file_both_ways() {
    let harness = Harness::start("lo-psql", Setup::default()).await;
    let bin = harness.cluster.bin_dir().to_owned();
    let data = blob(3 * 1024 * 1024 + 123);
    let input = harness.dir.join("in.bin");
    std::fs::write(&input, &data).expect("input file");
    let mut oids = Vec::new();
    for endpoint in harness.endpoints() {
        let output = harness.dir.join(&format!("out-{}.bin", endpoint.name));
        // libpq's lo_import/lo_export: lo_creat, lo_open, lowrite/loread in 8 KiB pieces and
        // lo_close, each a FunctionCall message.
        let script = harness.dir.write(
            &format!("lo-{}.sql", endpoint.name),
            &format!(
                "\\lo_import '{}'\n\\lo_export :LASTOID '{}'\nSELECT :LASTOID;\n",
                input.display(),
                output.display()
            ),
            0o644,
        );
        let conninfo = harness.conninfo(endpoint, "alice", "");
        let mut command = psql(&bin, &conninfo, ALICE_PASSWORD);
        command.arg("-f").arg(&script);
        let finished = run(command).await;
        let context = match endpoint.name {
            "direct" => "direct",
            _ => "works direct, fails through the gateway",
        };
        assert!(
            finished.success,
            "{context}: {}\n{}",
            finished.stdout, finished.stderr
        );
        let oid: u32 = finished
            .stdout
            .lines()
            .last()
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("{context}: no OID in {:?}", finished.stdout));
        let exported = std::fs::read(&output).expect("exported file");
        assert!(
            exported == data,
            "{context}: the exported bytes differ ({} bytes, {} expected)",
            exported.len(),
            data.len()
        );
        oids.push(oid);
    }
    // What the gateway's session wrote is on the server as written, read back directly.
    let (direct, _) = listening_session(&harness, harness.direct()).await;
    for oid in oids {
        let stored: Vec<u8> = direct
            .query_one("SELECT lo_get($1)", &[&oid])
            .await
            .expect("lo_get")
            .get(0);
        assert!(stored == data, "large object {oid} differs on the server");
    }
}

/// Writes `data` as a new large object with the SQL functions in 64 KiB pieces, reads it back
/// through a descriptor, and returns its OID and what was read.
async fn sql_large_object(client: &mut Client, data: &[u8]) -> (u32, Vec<u8>) {
    const INV_READ_WRITE: i32 = 0x0002_0000 | 0x0004_0000;
    let transaction = client.transaction().await.expect("BEGIN");
    let oid: u32 = transaction
        .query_one("SELECT lo_creat(-1)", &[])
        .await
        .expect("lo_creat")
        .get(0);
    let fd: i32 = transaction
        .query_one("SELECT lo_open($1, $2)", &[&oid, &INV_READ_WRITE])
        .await
        .expect("lo_open")
        .get(0);
    for piece in data.chunks(64 * 1024) {
        let written: i32 = transaction
            .query_one("SELECT lowrite($1, $2)", &[&fd, &piece])
            .await
            .expect("lowrite")
            .get(0);
        assert_eq!(usize::try_from(written).ok(), Some(piece.len()));
    }
    transaction
        .execute("SELECT lo_lseek($1, 0, 0)", &[&fd])
        .await
        .expect("lo_lseek");
    let mut read = Vec::with_capacity(data.len());
    loop {
        let piece: Vec<u8> = transaction
            .query_one("SELECT loread($1, 100000)", &[&fd])
            .await
            .expect("loread")
            .get(0);
        if piece.is_empty() {
            break;
        }
        read.extend_from_slice(&piece);
    }
    transaction
        .execute("SELECT lo_close($1)", &[&fd])
        .await
        .expect("lo_close");
    transaction.commit().await.expect("COMMIT");
    (oid, read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_by_sql_functions_match_both_ways() {
    let harness = Harness::start("lo-sql", Setup::default()).await;
    let data = blob(2 * 1024 * 1024 + 77);
    for endpoint in harness.endpoints() {
        let (mut client, _) = listening_session(&harness, endpoint).await;
        let (oid, read) = sql_large_object(&mut client, &data).await;
        assert!(
            read == data,
            "{}: read back {} bytes, wrote {}",
            endpoint.name,
            read.len(),
            data.len()
        );
        let whole: Vec<u8> = client
            .query_one("SELECT lo_get($1)", &[&oid])
            .await
            .expect("lo_get")
            .get(0);
        assert!(whole == data, "{}: lo_get differs", endpoint.name);
        let unlinked: i32 = client
            .query_one("SELECT lo_unlink($1)", &[&oid])
            .await
            .expect("lo_unlink")
            .get(0);
        assert_eq!(unlinked, 1);
    }
}

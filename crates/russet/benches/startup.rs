//! Time from starting `russet serve` to a ready `/readyz` on SQLite, and the size of the
//! binary. Run with `cargo bench -p russet --bench startup` (RUSSET_BENCH_RUNS, default 20).
//!
//! "cold" starts with an empty data directory (master key, database, migrations and the
//! admin key are created); "warm" starts again on the same directory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_russet");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && &buf[9..12] == b"200"
}

/// Starts the server on `data_dir`, returns the time until `/readyz` answered 200.
fn time_start(data_dir: &Path) -> Duration {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-level",
            "warn",
            "--data-dir",
        ])
        .arg(data_dir)
        .env_remove("RUSSET_DATABASE_URL")
        .env_remove("RUSSET_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("russet serve starts");
    let deadline = started + Duration::from_secs(30);
    while !ready(port) {
        assert!(Instant::now() < deadline, "russet serve was not ready within 30 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = started.elapsed();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    elapsed
}

fn report(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{label:<28} runs {:>3}  min {:>7.1} ms  median {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms",
        times.len(),
        ms(times[0]),
        ms(pct(0.5)),
        ms(pct(0.95)),
        ms(times[times.len() - 1])
    );
}

fn main() {
    // `cargo bench` passes flags such as --bench; this harness takes none.
    let runs: usize = std::env::var("RUSSET_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let size = std::fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
    println!(
        "binary {BIN}: {:.1} MiB ({size} bytes)",
        size as f64 / (1024.0 * 1024.0)
    );
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join("data");
        cold.push(time_start(&data));
        warm.push(time_start(&data));
    }
    report("serve -> /readyz, cold", cold);
    report("serve -> /readyz, warm", warm);
}

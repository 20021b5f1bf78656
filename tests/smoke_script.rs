//! `cargo test` runs `scripts/smoke.sh` (curl against the real binary), so
//! the script cannot rot. Needs bash and curl (Unix).

#![cfg(unix)]

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The script's own curls are bounded; this bounds the whole run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The smoke script passes against the binary this test run built.
#[test]
fn smoke_script_passes() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smoke.sh");
    let mut child = Command::new("bash")
        .arg(script)
        .env("SSE_SERVER_BIN", env!("CARGO_BIN_EXE_sse-server"))
        .env_remove("SSE_PUBLISH_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash scripts/smoke.sh (needs bash and curl)");
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    while child.try_wait().expect("wait for smoke.sh").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("smoke.sh ran longer than {SCRIPT_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("collect smoke.sh output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "smoke.sh failed:\n{stdout}\n{stderr}"
    );
    let summary = stdout.lines().last().unwrap_or("");
    assert!(
        summary.ends_with("passed, 0 failed") && !summary.starts_with("0 passed"),
        "{summary}"
    );
}

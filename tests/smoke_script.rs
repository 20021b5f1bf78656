//! `cargo test` runs `scripts/smoke.sh` (curl against the real binary), so
//! the script cannot rot. Needs bash and curl (Unix).

#![cfg(unix)]

use std::process::Command;

/// The smoke script passes against the binary this test run built.
#[test]
fn smoke_script_passes() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smoke.sh");
    let output = Command::new("bash")
        .arg(script)
        .env("SSE_SERVER_BIN", env!("CARGO_BIN_EXE_sse-server"))
        .output()
        .expect("run bash scripts/smoke.sh (needs bash and curl)");
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

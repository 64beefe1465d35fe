//! Shared helpers: where the binary and the shared corpus are, and running the binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `scanbridge` binary built for this test run.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scanbridge"))
}

/// `../shared` beside the repository (or `$SCANBRIDGE_SHARED`). Tests that need it fail loudly when it
/// is missing rather than passing vacuously.
pub fn shared() -> PathBuf {
    let p = match std::env::var_os("SCANBRIDGE_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    };
    assert!(
        p.join("samples").is_dir(),
        "the shared kit is required at {}",
        p.display()
    );
    p
}

pub fn sample(name: &str) -> String {
    shared().join("samples").join(name).display().to_string()
}

/// Runs the binary with `args`, feeding `stdin`.
pub fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn scanbridge");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the binary in `cwd` with `env` set and no token variable inherited from the test's own
/// environment (`SCANBRIDGE__SERVER__TOKEN`, `SCANBRIDGE_TOKEN`).
pub fn cli_in(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = bin();
    c.args(args).current_dir(cwd);
    c.env_remove("SCANBRIDGE__SERVER__TOKEN")
        .env_remove("SCANBRIDGE_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Asserts the exit code, showing both outputs when it differs.
pub fn exits(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(out),
        stderr(out)
    );
}

//! A real SMTP server for tests: aiosmtpd (PyPI) writing each received message to a Maildir, with a
//! small handler that answers RCPT with `550` for `reject*@` addresses and `451` for `later*@`, so
//! that the email target's classification meets real SMTP replies. `scripts/test` installs aiosmtpd;
//! without it, [`Smtp::start`] prints `SKIPPED: <why>` and returns None.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::PATIENCE;

const HANDLER: &str = r#"
from aiosmtpd.handlers import Mailbox

class Handler(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 no such user here"
        if address.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"
"#;

/// A running aiosmtpd; killed on drop.
pub struct Smtp {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Smtp {
    /// Starts aiosmtpd on a free port, or None (after printing `SKIPPED: ...`) without it.
    pub fn start(test: &str) -> Option<Smtp> {
        let probe = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                println!(
                    "SKIPPED: {test}: aiosmtpd is not importable by python3 (run scripts/test): {}",
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                );
                return None;
            }
            Err(e) => {
                println!("SKIPPED: {test}: no python3: {e}");
                return None;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(dir.path().join("maildir").join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("sbtest_handler.py"), HANDLER).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "sbtest_handler.Handler"])
            .arg(dir.path().join("maildir"))
            .env("PYTHONPATH", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn aiosmtpd");
        let smtp = Smtp { child, port, dir };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < PATIENCE, "aiosmtpd did not listen");
            std::thread::sleep(Duration::from_millis(30));
        }
        Some(smtp)
    }

    /// An `[targets.NAME]` email table pointing here (plain SMTP, as for a local relay).
    pub fn target(&self, name: &str, to: &[&str], extra: &str) -> String {
        let to: Vec<String> = to.iter().map(|a| format!("{a:?}")).collect();
        format!(
            "[targets.{name}]\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             from = \"scanbridge <scanbridge@example.org>\"\nto = [{}]\ntimeout = \"3s\"\n{extra}\n",
            self.port,
            to.join(", ")
        )
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("maildir/new"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    /// Waits until at least `n` messages arrived; returns them (raw RFC 5322 bytes).
    pub fn wait_messages(&self, n: usize, logs: impl Fn() -> String) -> Vec<Vec<u8>> {
        let start = Instant::now();
        loop {
            let files = self.files();
            if files.len() >= n {
                return files.iter().map(|p| std::fs::read(p).unwrap()).collect();
            }
            assert!(
                start.elapsed() < PATIENCE,
                "SMTP server got {} of {n} messages:\n{}",
                files.len(),
                logs()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    pub fn count(&self) -> usize {
        self.files().len()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

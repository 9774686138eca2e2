//! A running `evnas serve` for the daemon's tests: its stderr collected as it comes, waits on
//! its log and its exit, signals.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::search::evnas;

pub struct Served {
    pub child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    pub fn start(config: &Path, failpoints: Option<&str>) -> Self {
        Self::start_with(config, failpoints, &[])
    }

    /// With extra environment variables.
    pub fn start_with(config: &Path, failpoints: Option<&str>, env: &[(&str, &str)]) -> Self {
        let mut cmd: Command = evnas();
        cmd.args(["serve", "--config"]).arg(config).stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some(f) = failpoints {
            cmd.env("FAILPOINTS", f);
        }
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut child = cmd.spawn().expect("start evnas serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self { child, log, reader: Some(reader) }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits up to `within` for the process to exit; then its whole stderr.
    pub fn wait(&mut self, within: Duration) -> Option<(ExitStatus, String)> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                if let Some(reader) = self.reader.take() {
                    reader.join().unwrap();
                }
                return Some((status, self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits until the log holds `text` `times` times; fails if the process exits first or
    /// time runs out.
    pub fn wait_for_log_n(&mut self, text: &str, times: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.log().matches(text).count() < times {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("serve exited ({status}) before logging {text:?}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "serve did not log {text:?} in time:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the log holds `text`; fails if the process exits first or time runs out.
    pub fn wait_for_log(&mut self, text: &str, within: Duration) {
        self.wait_for_log_n(text, 1, within);
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no preconditions.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGTERM, then a clean exit (status 0) within 30 s.
    pub fn stop_cleanly(&mut self) {
        self.sigterm();
        match self.wait(Duration::from_secs(30)) {
            Some((status, log)) => assert!(status.success(), "serve exited with {status} on SIGTERM:\n{log}"),
            None => panic!("serve did not exit within 30 s of SIGTERM:\n{}", self.log()),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The only search directory under `runs` whose name starts with `prefix`.
pub fn search_dir_named(runs: &Path, prefix: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .expect("runs dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(dirs.len(), 1, "expected one {prefix}* directory in {}: {dirs:?}", runs.display());
    dirs.into_iter().next().unwrap()
}

/// The only search directory under `runs` (serve names it after the config's digest).
pub fn search_dir(runs: &Path) -> PathBuf {
    search_dir_named(runs, "search-")
}

/// A copy of `tiny_setup`'s config (made under `root`) whose searches go under `runs`, written there.
pub fn config_with_runs(config: &Path, root: &Path, runs: &Path) -> PathBuf {
    std::fs::create_dir_all(runs).unwrap();
    let text = std::fs::read_to_string(config).unwrap();
    let original = format!("dir = \"{}\"", root.join("runs").display());
    assert!(text.contains(&original), "{} has no {original}", config.display());
    let own = runs.join("tiny.toml");
    std::fs::write(&own, text.replace(&original, &format!("dir = \"{}\"", runs.display()))).unwrap();
    own
}

/// A port nobody listens on right now (for a test's own servers on loopback).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The body of an HTTP GET of `path` from 127.0.0.1:`port`, or `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Some(dechunk(body));
    }
    Some(body.to_string())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a URL query value.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

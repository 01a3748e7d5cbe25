//! Every SDK against kassa: its own test suite over the shared vectors (`sdks/vectors/`), then
//! its end-to-end test against a real `kassa serve --demo` — create, pay through the sandbox,
//! query, receive and verify a callback in a web server of the SDK's language. The Rust client
//! runs here; Python (pytest), TypeScript (`node --test`) and Java (a plain test runner) run as
//! child processes given the server by `KASSA_E2E_*` variables.
//!
//! A language's tools missing is a printed skip on a developer's machine and a failure in CI
//! (`.ci/run` installs them).

mod common;

use common::{TEST_KEK, kassa, run_ok, serve};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The longest any SDK's suite may take (they take seconds).
const SUITE_TIMEOUT: Duration = Duration::from_secs(240);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `kassa serve --demo` on SQLite and what an SDK needs to reach it.
struct Demo {
    served: common::Served,
    _dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

fn app_id_of(lines: &[String], currency: &str) -> i64 {
    let line = lines
        .iter()
        .find(|l| l.trim_start().starts_with(&format!("{currency} appId")))
        .unwrap_or_else(|| panic!("no {currency} app printed: {lines:#?}"));
    line.split_whitespace().last().unwrap().parse().unwrap()
}

fn webhook_secret(database_url: &str, app_id: i64) -> String {
    let shown = run_ok(&mut kassa(&[
        "app",
        "show",
        &app_id.to_string(),
        "--show-secrets",
        "--database-url",
        database_url,
    ]));
    let app: serde_json::Value = serde_json::from_str(&shown).unwrap();
    app["webhookSecret"].as_str().unwrap().to_string()
}

fn demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/kassa.db", dir.path().display());
    let served = serve(
        &[
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &database_url,
            "--data-dir",
            "data",
            "--callback-retry-interval",
            "2s",
        ],
        dir.path(),
    );
    let collect_app = app_id_of(&served.stdout_lines, "EUR");
    let pix_app = app_id_of(&served.stdout_lines, "BRL");
    let demo_dir = dir.path().join("data/demo");
    let env = vec![
        ("KASSA_E2E_URL", served.base.clone()),
        ("KASSA_E2E_COLLECT_APP_ID", collect_app.to_string()),
        ("KASSA_E2E_PIX_APP_ID", pix_app.to_string()),
        (
            "KASSA_E2E_MERCHANT_KEY",
            demo_dir.join("merchant.key.pem").display().to_string(),
        ),
        (
            "KASSA_E2E_PLATFORM_KEY",
            demo_dir.join("platform.pub.pem").display().to_string(),
        ),
        (
            "KASSA_E2E_COLLECT_SECRET",
            webhook_secret(&database_url, collect_app),
        ),
        (
            "KASSA_E2E_PIX_SECRET",
            webhook_secret(&database_url, pix_app),
        ),
        ("KASSA_E2E_KASSA", common::KASSA.to_string()),
        ("KASSA_E2E_DATABASE_URL", database_url),
        ("KASSA_KEK", TEST_KEK.to_string()),
    ];
    Demo {
        served,
        _dir: dir,
        env,
    }
}

/// Whether `program` runs; if not, a skip on a developer's machine, a failure in CI.
fn have(program: &str, version_arg: &str, what: &str) -> bool {
    let runs = Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is missing; .ci/run installs it for {what}"
        );
        eprintln!("SKIPPED {what}: {program} is not installed (.ci/run installs it)");
    }
    runs
}

/// Runs a child to completion within [`SUITE_TIMEOUT`]; its output on failure.
fn run_suite(mut command: Command, what: &str) -> String {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > SUITE_TIMEOUT {
            let _ = child.kill();
            panic!("{what} ran longer than {SUITE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

// Python

/// The Python with the SDK's test requirements: `.ci/run`'s virtual environment, else the
/// system's.
fn python() -> Option<String> {
    let venv = repo().join("target/sdk-python-venv/bin/python");
    let python = if venv.exists() {
        venv.display().to_string()
    } else {
        "python3".to_string()
    };
    let ready = Command::new(&python)
        .args(["-c", "import cryptography, httpx, pytest"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no Python with cryptography, httpx and pytest; .ci/run makes target/sdk-python-venv"
        );
        eprintln!(
            "SKIPPED the Python SDK: no Python with cryptography, httpx and pytest \
             (pip install -r sdks/python/requirements-test.txt)"
        );
        return None;
    }
    Some(python)
}

fn pytest(python: &str, file: &str) -> Command {
    let mut command = Command::new(python);
    command
        .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", file])
        .current_dir(repo().join("sdks/python"))
        .env("PYTHONPATH", "src")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

#[test]
fn python_sdk_passes_the_vectors() {
    let Some(python) = python() else { return };
    let out = run_suite(pytest(&python, "tests/test_vectors.py"), "pytest vectors");
    assert!(out.contains(" passed") && !out.contains("skipped"), "{out}");
}

#[test]
fn python_sdk_end_to_end() {
    let Some(python) = python() else { return };
    let demo = demo();
    let mut command = pytest(&python, "tests/test_e2e.py");
    command.envs(demo.env.iter().map(|(k, v)| (k, v)));
    let out = run_suite(command, "pytest end to end");
    assert!(
        out.contains("2 passed") && !out.contains("skipped"),
        "{out}"
    );
    drop(demo.served);
}

// TypeScript

/// Builds the TypeScript package with its own `tsc` (`npm ci` in sdks/node installs it).
fn built_node_sdk() -> Option<PathBuf> {
    let dir = repo().join("sdks/node");
    if !have("node", "--version", "the TypeScript SDK") {
        return None;
    }
    let tsc = dir.join("node_modules/typescript/bin/tsc");
    if !tsc.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "sdks/node/node_modules is missing; .ci/run runs npm ci there"
        );
        eprintln!("SKIPPED the TypeScript SDK: run npm ci in sdks/node first");
        return None;
    }
    let mut build = Command::new("node");
    build
        .arg(&tsc)
        .args(["-p", "tsconfig.json"])
        .current_dir(&dir);
    // Both suites build the same dist/: one at a time, so neither reads a half-written file.
    let _lock = BuildLock::take("node-sdk");
    run_suite(build, "tsc");
    Some(dir)
}

/// An exclusive lock on a file under the target directory, held until dropped (the test
/// binaries of one run are separate processes).
struct BuildLock {
    _held: std::fs::File,
}

impl BuildLock {
    fn take(name: &str) -> BuildLock {
        use std::os::fd::AsRawFd;
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.lock"));
        let file = std::fs::File::create(path).unwrap();
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(locked, 0, "cannot lock {name}");
        BuildLock { _held: file }
    }
}

fn node_test(dir: &Path, file: &str) -> Command {
    let mut command = Command::new("node");
    command.args(["--test", file]).current_dir(dir);
    command
}

/// `node --test`'s summary: how many passed and were skipped.
fn node_summary(out: &str, name: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("# {name} ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `# {name}` in node's output:\n{out}"))
}

#[test]
fn typescript_sdk_passes_the_vectors() {
    let Some(dir) = built_node_sdk() else { return };
    let out = run_suite(node_test(&dir, "test/vectors.test.mjs"), "node vectors");
    assert!(node_summary(&out, "pass") > 50, "{out}");
    assert_eq!(node_summary(&out, "skipped"), 0, "{out}");
}

#[test]
fn typescript_sdk_end_to_end() {
    let Some(dir) = built_node_sdk() else { return };
    let demo = demo();
    let mut command = node_test(&dir, "test/e2e.test.mjs");
    command.envs(demo.env.iter().map(|(k, v)| (k, v)));
    let out = run_suite(command, "node end to end");
    assert_eq!(node_summary(&out, "pass"), 2, "{out}");
    assert_eq!(node_summary(&out, "skipped"), 0, "{out}");
    drop(demo.served);
}

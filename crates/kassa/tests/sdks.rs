//! Every SDK against kassa: its own test suite over the shared vectors (`sdks/vectors/`), then
//! its end-to-end test against a real `kassa serve --demo` — create, pay through the sandbox,
//! query, receive and verify a callback in a web server of the SDK's language. The Rust client
//! runs here; Python (pytest), TypeScript (`node --test`) and Java (a plain test runner) run as
//! child processes given the server by `KASSA_E2E_*` variables.
//!
//! A language's tools missing is a printed skip on a developer's machine and a failure in CI
//! (`.ci/run` installs them).

mod common;

use common::{Inbox, TEST_KEK, kassa, run_ok};
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
    let (served, database_url) = common::serve_demo(dir.path());
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

// Java

/// Compiles the Java library and its tests with `javac` into a folder of this run's own.
fn built_java_sdk(name: &str) -> Option<PathBuf> {
    if !have("javac", "-version", "the Java SDK") || !have("java", "-version", "the Java SDK") {
        return None;
    }
    let classes = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("java-sdk-{name}"));
    let _ = std::fs::remove_dir_all(&classes);
    let mut sources = Vec::new();
    collect_java_files(&repo().join("sdks/java/src"), &mut sources);
    let mut javac = Command::new("javac");
    javac
        .args(["-Xlint:all", "-Werror", "-d"])
        .arg(&classes)
        .args(&sources);
    run_suite(javac, "javac");
    Some(classes)
}

fn collect_java_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_java_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "java") {
            found.push(path);
        }
    }
}

fn java_main(classes: &Path, main: &str) -> Command {
    let mut command = Command::new("java");
    command.arg("-cp").arg(classes).arg(main);
    command
}

#[test]
fn java_sdk_passes_the_vectors() {
    let Some(classes) = built_java_sdk("vectors") else {
        return;
    };
    let mut command = java_main(&classes, "kassa.client.VectorsTest");
    command.arg(repo().join("sdks/vectors/vectors.json"));
    let out = run_suite(command, "java vectors");
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn java_sdk_end_to_end() {
    let Some(classes) = built_java_sdk("e2e") else {
        return;
    };
    let demo = demo();
    let mut command = java_main(&classes, "kassa.client.EndToEnd");
    command.envs(demo.env.iter().map(|(k, v)| (k, v)));
    let out = run_suite(command, "java end to end");
    assert!(out.contains("2 passed, 0 failed"), "{out}");
    drop(demo.served);
}

// Rust

async fn callback_of(inbox: &Inbox, order_no: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    for _ in 0..300 {
        let found = inbox
            .lock()
            .unwrap()
            .iter()
            .find(|(_, body)| String::from_utf8_lossy(body).contains(order_no))
            .cloned();
        if let Some(found) = found {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no callback for {order_no} within 30 s");
}

fn demo_env<'a>(demo: &'a Demo, name: &str) -> &'a str {
    &demo.env.iter().find(|(k, _)| *k == name).unwrap().1
}

fn rust_client(demo: &Demo, app: &str) -> kassa_client::Client {
    let read = |name| std::fs::read_to_string(demo_env(demo, name)).unwrap();
    let key = kassa_client::SigningKey::parse(&read("KASSA_E2E_MERCHANT_KEY")).unwrap();
    let platform = kassa_client::VerifyingKey::parse(&read("KASSA_E2E_PLATFORM_KEY")).unwrap();
    let app_id = demo_env(demo, app).parse().unwrap();
    kassa_client::Client::builder(&demo.served.base, app_id, key, platform)
        .build()
        .unwrap()
}

fn trigger(demo: &Demo, order_no: &str) {
    let url = demo_env(demo, "KASSA_E2E_DATABASE_URL");
    run_ok(&mut kassa(&[
        "trigger",
        order_no,
        "--outcome",
        "paid",
        "--database-url",
        url,
    ]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_end_to_end() {
    use kassa_client::collect::{ApplyRequest, PayType, Status};
    use kassa_client::pix::{InitRequest, OrderState};
    use kassa_client::{AmountMinor, CallbackVerifier, Currency, Error, Event};

    let demo = demo();
    let (notify_url, inbox) = common::callback_receiver("success").await;
    let client = rust_client(&demo, "KASSA_E2E_COLLECT_APP_ID");
    let collect = client.collect(Currency::Eur).unwrap();
    let mut order = ApplyRequest {
        order_id: "rust-1".into(),
        amount: AmountMinor(2500),
        pay_type: PayType::Cashier,
        in_bank_code: "CASHIER".into(),
        country: Some("000".into()),
        name: "Jane Doe".into(),
        phone: "+31612345678".into(),
        email: "jane@example.com".into(),
        partner_user_id: "rust-user".into(),
        call_back_url: "https://shop.example/paid".into(),
        call_back_fail_url: "https://shop.example/failed".into(),
        notify_url: Some(notify_url.clone()),
        subject: None,
        body: None,
    };
    assert!(
        !format!("{order:?}").contains("jane@"),
        "Debug masks the payer"
    );
    let created = collect.apply(&order).await.unwrap();
    assert_eq!(created.order_no.len(), 16);
    assert_eq!(collect.apply(&order).await.unwrap(), created, "replayed");
    order.amount = AmountMinor(2600);
    let refused = collect.apply(&order).await.unwrap_err();
    assert_eq!(refused.api_code(), Some("50000001"), "{refused}");
    assert!(matches!(
        client.collect(Currency::Brl),
        Err(Error::Usage(_))
    ));
    assert_eq!(
        collect.query("rust-1", None).await.unwrap().status,
        Status::NotStarted
    );
    trigger(&demo, &created.order_no);
    let paid = collect
        .query("rust-1", Some(&created.order_no))
        .await
        .unwrap();
    assert_eq!(
        (paid.status, paid.actual_amount),
        (Status::Succeeded, AmountMinor(2500))
    );
    let (headers, body) = callback_of(&inbox, &created.order_no).await;
    let platform = std::fs::read_to_string(demo_env(&demo, "KASSA_E2E_PLATFORM_KEY")).unwrap();
    let platform = kassa_client::VerifyingKey::parse(&platform).unwrap();
    let verifier = CallbackVerifier::new(platform.clone(), client.app_id())
        .with_webhook_secret(demo_env(&demo, "KASSA_E2E_COLLECT_SECRET"));
    let callback = verifier.verify(&headers, &body).unwrap();
    assert!(callback.webhook_id.is_some());
    let Event::Collect(called) = callback.event else {
        panic!("a collect callback")
    };
    assert_eq!(called.status, Status::Succeeded);
    let stranger = CallbackVerifier::new(platform.clone(), client.app_id() + 1000);
    assert!(matches!(
        stranger.verify(&headers, &body),
        Err(Error::WrongApp { .. })
    ));

    let pix_client = rust_client(&demo, "KASSA_E2E_PIX_APP_ID");
    let pix = pix_client.pix();
    let created = pix
        .init_collect(&InitRequest {
            user_order_number: "rust-pix-1".into(),
            submit_amount: AmountMinor(1234),
            notify_url: Some(notify_url),
        })
        .await
        .unwrap();
    let code = kassa_client::brcode::decode(&created.qr_code).unwrap();
    assert_eq!(code.text(&[54]), Some("12.34"));
    assert_eq!(code.text(&[62, 5]), Some(created.order_no.as_str()));
    trigger(&demo, &created.order_no);
    let paid = pix.query("rust-pix-1").await.unwrap();
    assert_eq!(paid.order_state, OrderState::Succeeded);
    let (headers, body) = callback_of(&inbox, &created.order_no).await;
    let callback = CallbackVerifier::new(platform, pix_client.app_id())
        .with_webhook_secret(demo_env(&demo, "KASSA_E2E_PIX_SECRET"))
        .verify(&headers, &body)
        .unwrap();
    assert!(matches!(callback.event, Event::Pix(ref o) if o.serial_no == "rust-pix-1"));
    drop(demo.served);
}

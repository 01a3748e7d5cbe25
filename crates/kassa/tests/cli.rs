//! Tests of the `kassa` binary as an operator and a merchant's developer use it: operator
//! commands, configuration precedence, `sign`/`verify`, and `serve --demo` end to end.

mod common;

use common::{json, kassa, run_ok, run_with_stdin, serve};
use kassa_store::testing::TestDatabase;
use std::process::Command;

async fn operator_commands(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let url = db.url.as_str();
    // --database-url before the subcommand.
    let created = json(&run_ok(
        kassa(&[
            "--database-url",
            url,
            "merchant",
            "create",
            "--name",
            "Shop",
            "--currency",
            "EUR",
            "--currency",
            "USD",
            "--generate-keys",
        ])
        .arg(&keys),
    ));
    let apps = created["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2);
    assert_eq!(apps[0]["currency"], "EUR");
    assert_eq!(apps[1]["currency"], "USD");
    let eur_app = apps[0]["appId"].as_i64().unwrap();
    assert!(created["merchantId"].as_i64().unwrap() > 0);
    let platform_pem = created["platformPublicKey"].as_str().unwrap().to_string();
    assert!(platform_pem.starts_with("-----BEGIN PUBLIC KEY-----"));

    let private_key = keys.join("merchant.key.pem");
    assert!(
        std::fs::read_to_string(&private_key)
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key must be readable by its owner only"
        );
    }
    // Refuses to overwrite an existing key pair.
    let again = kassa(&[
        "merchant",
        "create",
        "--name",
        "X",
        "--currency",
        "EUR",
        "--database-url",
        url,
        "--generate-keys",
    ])
    .arg(&keys)
    .output()
    .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwriting"));

    // --database-url after the subcommand; the platform key is stable.
    let platform_again = run_ok(&mut kassa(&["keys", "platform", "--database-url", url]));
    assert_eq!(platform_again, platform_pem);

    let shown = json(&run_ok(&mut kassa(&[
        "app",
        "show",
        &eur_app.to_string(),
        "--database-url",
        url,
    ])));
    assert_eq!(shown["currency"], "EUR");
    assert_eq!(
        shown["publicKey"].as_str().unwrap(),
        std::fs::read_to_string(keys.join("merchant.pub.pem")).unwrap()
    );

    // set-key with a bare base64 DER key (as Java back ends hand them out).
    let other_dir = dir.path().join("other");
    run_ok(
        kassa(&[
            "merchant",
            "create",
            "--name",
            "Tmp",
            "--currency",
            "EUR",
            "--database-url",
            url,
            "--generate-keys",
        ])
        .arg(&other_dir),
    );
    let pem = std::fs::read_to_string(other_dir.join("merchant.pub.pem")).unwrap();
    let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    std::fs::write(dir.path().join("bare.txt"), &bare).unwrap();
    let updated = json(&run_ok(
        kassa(&[
            "app",
            "set-key",
            &eur_app.to_string(),
            "--database-url",
            url,
            "--public-key",
        ])
        .arg(dir.path().join("bare.txt")),
    ));
    assert_eq!(updated["publicKey"].as_str().unwrap(), pem);
    std::fs::write(dir.path().join("junk.pem"), "not a key").unwrap();
    let refused = kassa(&[
        "app",
        "set-key",
        &eur_app.to_string(),
        "--database-url",
        url,
        "--public-key",
    ])
    .arg(dir.path().join("junk.pem"))
    .output()
    .unwrap();
    assert!(!refused.status.success());

    let limited = json(&run_ok(&mut kassa(&[
        "app",
        "set-limits",
        &eur_app.to_string(),
        "--min",
        "5",
        "--max",
        "250.00",
        "--database-url",
        url,
    ])));
    assert_eq!(limited["limits"]["min"], "5.00");
    assert_eq!(limited["limits"]["max"], "250.00");
    let cleared = json(&run_ok(&mut kassa(&[
        "app",
        "set-limits",
        &eur_app.to_string(),
        "--clear",
        "--database-url",
        url,
    ])));
    assert!(cleared["limits"].is_null());

    let listed = json(&run_ok(&mut kassa(&[
        "merchant",
        "list",
        "--database-url",
        url,
    ])));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["name"], "Shop");

    let unknown = kassa(&["app", "show", "999999", "--database-url", url])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no app has appId 999999"));
    let bad_currency = kassa(&[
        "merchant",
        "create",
        "--name",
        "X",
        "--currency",
        "JPY",
        "--database-url",
        url,
    ])
    .output()
    .unwrap();
    assert!(String::from_utf8_lossy(&bad_currency.stderr).contains("unknown currency JPY"));
}

async fn demo_flow(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "serve",
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db.url,
        "--data-dir",
        "data",
    ];
    let first = serve(&args, dir.path());
    let printed = first.stdout_lines.join("");
    let app_line = first
        .stdout_lines
        .iter()
        .find(|l| l.trim_start().starts_with("EUR appId"))
        .unwrap();
    let app_id: i64 = app_line.split_whitespace().last().unwrap().parse().unwrap();
    assert!(
        printed.contains("sign --key data/demo/merchant.key.pem"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("{}/eur/collect/apply", first.base)),
        "{printed}"
    );
    let key = dir.path().join("data/demo/merchant.key.pem");
    let platform = dir.path().join("data/demo/platform.pub.pem");

    // The printed example, step by step: sign, send, verify the reply.
    let request = format!(
        r#"{{"appId":{app_id},"orderId":"demo-1","name":"Jane Doe","phone":"+31612345678","email":"jane@example.com","amount":"25.00","payType":"CASHIER","inBankCode":"CASHIER","country":"000","callBackUrl":"https://shop.example/paid","callBackFailUrl":"https://shop.example/failed","partnerUserId":"demo-user"}}"#
    );
    let signed = run_with_stdin(kassa(&["sign", "--key"]).arg(&key), &request);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let client = reqwest::Client::new();
    let reply = client
        .post(format!("{}/eur/collect/apply", first.base))
        .body(signed.stdout)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let reply_text = reply.text().await.unwrap();
    let verified = run_with_stdin(kassa(&["verify", "--key"]).arg(&platform), &reply_text);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&verified.stdout).trim(),
        "signature valid"
    );
    // A tampered reply fails verification.
    let tampered = reply_text.replace("demo-1", "demo-2");
    let refused = run_with_stdin(kassa(&["verify", "--key"]).arg(&platform), &tampered);
    assert!(!refused.status.success());

    // The query of the example, signed from a file argument this time.
    std::fs::write(
        dir.path().join("q.json"),
        format!(r#"{{"appId":{app_id},"orderId":"demo-1"}}"#),
    )
    .unwrap();
    let query = run_ok(
        kassa(&["sign", "--key"])
            .arg(&key)
            .arg(dir.path().join("q.json")),
    );
    let reply = client
        .post(format!("{}/eur/collect/query", first.base))
        .body(query)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(json(&reply.text().await.unwrap())["data"]["status"], 0);
    drop(first);

    // A second start reuses the demo merchant and its key.
    let second = serve(&args, dir.path());
    let printed_again = second.stdout_lines.join("");
    assert!(
        printed_again.contains(&format!("EUR appId {app_id}")),
        "{printed_again}"
    );
    let listed = json(&run_ok(&mut kassa(&[
        "merchant",
        "list",
        "--database-url",
        &db.url,
    ])));
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "the demo merchant is created once"
    );
}

kassa_store::on_both_databases!(
    kassa_store::testing::database;operator_commands, demo_flow);

#[test]
fn configuration_precedence_flag_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let config = dir.path().join("kassa.toml");
    std::fs::write(&config, format!("database_url = \"{}\"\n", db("file.db"))).unwrap();
    let platform_of = |command: &mut Command| run_ok(command);

    // The file alone.
    let from_file = platform_of(kassa(&["keys", "platform", "--config"]).arg(&config));
    assert!(dir.path().join("file.db").exists());
    // The environment beats the file.
    let from_env = platform_of(
        kassa(&["keys", "platform", "--config"])
            .arg(&config)
            .env("KASSA_DATABASE_URL", db("env.db")),
    );
    assert!(dir.path().join("env.db").exists());
    assert_ne!(
        from_env, from_file,
        "another database has another platform key"
    );
    // The flag beats both.
    platform_of(
        kassa(&[
            "keys",
            "platform",
            "--database-url",
            &db("flag.db"),
            "--config",
        ])
        .arg(&config)
        .env("KASSA_DATABASE_URL", db("env.db")),
    );
    assert!(dir.path().join("flag.db").exists());
    // The environment names the config file too.
    let via_env_config = platform_of(kassa(&["keys", "platform"]).env("KASSA_CONFIG", &config));
    assert_eq!(via_env_config, from_file);

    std::fs::write(&config, "databse_url = \"x\"\n").unwrap();
    let typo = kassa(&["keys", "platform", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("databse_url"));
}

#[test]
fn migrate_creates_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("nested/dir/kassa.db").display()
    );
    let out = run_ok(&mut kassa(&["migrate", "--database-url", &url]));
    assert_eq!(out.trim(), "database is up to date");
    let path = dir.path().join("nested/dir/kassa.db");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the database holds the platform key");
    }
    let bad = kassa(&["migrate", "--database-url", "mysql://x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported database URL"));
}

#[test]
fn sign_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    std::fs::write(
        &key,
        kassa_signature::SigningKey::generate()
            .unwrap()
            .to_pkcs8_pem(),
    )
    .unwrap();
    for bad in ["{", "[1]", r#"{"a":{"b":1}}"#] {
        let out = run_with_stdin(kassa(&["sign", "--key"]).arg(&key), bad);
        assert!(!out.status.success(), "{bad}");
    }
    let missing = kassa(&["sign", "--key", "/nonexistent/key.pem"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

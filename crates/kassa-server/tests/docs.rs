//! Keeps `docs/collect-api.md` true: its error table equals the code's, and its worked
//! signing example (request, canonical string, signature) is what kassa computes.

use kassa_server::collect::Code;
use kassa_signature::{SigningKey, VerifyingKey, parse_signed_object};
use std::path::PathBuf;

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The first fenced block after `<!-- marker -->`.
fn block_after(doc: &str, marker: &str) -> String {
    let start = doc.find(&format!("<!-- {marker} -->")).expect(marker);
    let rest = &doc[start..];
    let open = rest.find("```").unwrap();
    let body_start = open + rest[open..].find('\n').unwrap() + 1;
    let close = body_start + rest[body_start..].find("```").unwrap();
    rest[body_start..close].trim_end_matches('\n').to_string()
}

#[test]
fn error_table_matches_the_code() {
    let doc = repo_file("docs/collect-api.md");
    for code in Code::ALL {
        let row = format!(
            "| {} | {} | {} |",
            code.value(),
            code.http_status().as_u16(),
            code.meaning()
        );
        assert!(
            doc.contains(&row),
            "docs/collect-api.md lacks the row\n{row}"
        );
    }
    let rows = doc
        .lines()
        .filter(|l| {
            l.len() > 11 && l.starts_with("| ") && l[2..10].bytes().all(|b| b.is_ascii_digit())
        })
        .count();
    assert_eq!(
        rows,
        Code::ALL.len(),
        "the docs list codes the code does not have"
    );
}

#[test]
fn pix_error_table_matches_the_code() {
    use kassa_server::pix::Code;
    let doc = repo_file("docs/pix-api.md");
    for code in Code::ALL {
        let row = format!(
            "| {} | {} | {} |",
            code.value(),
            code.http_status().as_u16(),
            code.meaning()
        );
        assert!(doc.contains(&row), "docs/pix-api.md lacks the row\n{row}");
    }
    let rows = doc
        .lines()
        .filter(|l| {
            l.len() > 7
                && l.starts_with("| ")
                && l[2..6].bytes().all(|b| b.is_ascii_digit())
                && &l[6..7] == " "
        })
        .count();
    assert_eq!(
        rows,
        Code::ALL.len(),
        "the docs list codes the code does not have"
    );
}

#[test]
fn worked_signing_example_is_true() {
    let doc = repo_file("docs/collect-api.md");
    let request = block_after(&doc, "example-request");
    let canonical = block_after(&doc, "example-canonical");
    let sign = block_after(&doc, "example-sign");
    assert_eq!(parse_signed_object(&request).unwrap().canonical, canonical);
    let key = SigningKey::parse(&repo_file("docs/examples/merchant-example.key.pem")).unwrap();
    assert_eq!(key.sign_base64(canonical.as_bytes()), sign);
    let public = VerifyingKey::parse(&repo_file("docs/examples/merchant-example.pub.pem")).unwrap();
    public.verify_base64(canonical.as_bytes(), &sign).unwrap();
}

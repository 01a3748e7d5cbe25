//! axe-core (npm, `tools/axe`) for the browser tests: its script, and a check that a page has
//! no serious or critical WCAG 2.2 AA violation.

use serde_json::json;
use std::path::PathBuf;

use super::webdriver::Browser;

/// axe-core's script, as `.ci/run` installs it.
pub fn axe_source() -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools/axe/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "axe-core is missing at {}: run npm ci in tools/axe",
                path.display()
            )
        }
        Err(_) => {
            eprintln!("SKIPPED: axe-core is not installed (cd tools/axe && npm ci)");
            None
        }
    }
}

/// Injects axe-core into the page and asserts it finds nothing serious or critical.
pub async fn accessible(browser: &Browser, axe: &str, page: &str) {
    let loaded = browser
        .execute(&format!("{axe}\n;return typeof axe;"))
        .await;
    assert_eq!(loaded, json!("object"), "axe-core did not load on {page}");
    let script = r#"
        const done = arguments[arguments.length - 1];
        axe.run(document, { runOnly: { type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] } })
            .then(result => done(result.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => v.id + ' (' + v.impact + '): ' +
                     v.nodes.map(n => n.target.join(' ')).join(', '))))
            .catch(e => done(['axe failed: ' + e]));
    "#;
    let violations = browser.execute_async(script).await;
    assert_eq!(violations, json!([]), "accessibility of {page}");
}

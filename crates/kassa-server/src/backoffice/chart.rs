//! Charts drawn on the server as inline SVG: no script, no third-party library, readable by a
//! screen reader (a title and a description that states the figures).

/// Stacked bars of each day's orders: paid (solid) and not paid (light). `days` is
/// `(label, paid, other)`, oldest first. Labels are escaped; figures are integers.
pub fn daily_orders(days: &[(String, i64, i64)]) -> String {
    const WIDTH: i64 = 560;
    const HEIGHT: i64 = 200;
    const AXIS: i64 = 24;
    let most = days.iter().map(|(_, p, o)| p + o).max().unwrap_or(0).max(1);
    let slot = WIDTH / (days.len() as i64).max(1);
    let bar = (slot * 3 / 5).max(4);
    let scale = |n: i64| n.saturating_mul(HEIGHT - AXIS - 16) / most;
    let description: Vec<String> = days
        .iter()
        .map(|(label, paid, other)| format!("{}: {paid} paid of {}", escape(label), paid + other))
        .collect();
    let mut svg = format!(
        r#"<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" class="chart"><title id="chart-title">Orders per day, last {} days</title><desc id="chart-desc">{}</desc>"#,
        days.len(),
        description.join("; ")
    );
    for (i, (label, paid, other)) in days.iter().enumerate() {
        let x = i as i64 * slot + (slot - bar) / 2;
        let base = HEIGHT - AXIS;
        let (paid_h, other_h) = (scale(*paid), scale(*other));
        svg.push_str(&format!(
            r##"<rect x="{x}" y="{}" width="{bar}" height="{paid_h}" fill="#1d7a33"/><rect x="{x}" y="{}" width="{bar}" height="{other_h}" fill="#9aa5b1"/><text x="{}" y="{}" font-size="12" text-anchor="middle" fill="currentColor">{}</text><text x="{}" y="{}" font-size="12" text-anchor="middle" fill="currentColor">{}</text>"##,
            base - paid_h,
            base - paid_h - other_h,
            x + bar / 2,
            HEIGHT - 6,
            escape(label),
            x + bar / 2,
            (base - paid_h - other_h - 4).max(12),
            paid + other,
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_to_the_busiest_day_and_labels_escaped() {
        let svg = daily_orders(&[("Mon".into(), 3, 1), ("<b>".into(), 0, 0)]);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Mon: 3 paid of 4"), "{svg}");
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        // The busiest day's bars together fill the drawing height (200 - 24 - 16).
        assert!(
            svg.contains(r#"height="120""#) && svg.contains(r#"height="40""#),
            "{svg}"
        );
        assert!(daily_orders(&[]).ends_with("</svg>"));
    }
}

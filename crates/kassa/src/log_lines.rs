//! The server's log lines: `tracing_subscriber`'s text and JSON lines, with the request a line
//! was logged for written where a `request` span of its own would stand — `request{request_id=…
//! method=… path=…}:` after the level in text, the first entry of `spans` in JSON — read from the
//! request's task-local ([`kassa_server::request_id::Current`]) when a line is written, instead
//! of a tracing span made for every request whether it logs or not (see that module; where
//! debug lines are on, the request is a span again, and the library writes it).
//!
//! Everything else of a line (time, level, other spans, target, fields) is the library's own
//! formatter's, so the lines read as they did when the request was a span.

use kassa_server::request_id::{self, Current};
use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The name the request's entry is written under, as its span was called.
const SPAN_NAME: &str = "request";

/// Lines for people: the time and level written here, the request after them, then the
/// library's text line without its own time and level.
pub struct TextLines {
    rest: Format<Full, ()>,
}

/// Lines for log collectors: the library's JSON object with the request in its `spans`.
pub struct JsonLines {
    line: Format<Json>,
}

pub fn text() -> TextLines {
    TextLines {
        rest: Format::default().without_time().with_level(false),
    }
}

pub fn json() -> JsonLines {
    JsonLines {
        line: Format::default()
            .json()
            .with_current_span(false)
            .with_span_list(true),
    }
}

impl<S, N> FormatEvent<S, N> for TextLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let styles = Styles::new(writer.has_ansi_escapes());
        write!(writer, "{}", styles.dimmed)?;
        if SystemTime.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        write!(writer, "{} ", styles.end)?;
        let (colour, end) = styles.level(event.metadata().level());
        write!(
            writer,
            "{colour}{:>5}{end} ",
            event.metadata().level().as_str()
        )?;
        request_id::with_current(|current| {
            if !current.needs_naming() {
                return Ok(());
            }
            write_text_entry(&mut writer, current, &styles)?;
            // The library writes the space after the last span; with none of its own, here.
            match ctx.event_scope() {
                None => writer.write_char(' '),
                Some(_) => Ok(()),
            }
        })
        .unwrap_or(Ok(()))?;
        self.rest.format_event(ctx, writer, event)
    }
}

/// `request{request_id=… method=… path=…}:` as the library writes a span with those fields.
fn write_text_entry(writer: &mut Writer<'_>, current: &Current, styles: &Styles) -> fmt::Result {
    let Styles {
        bold,
        dimmed,
        italic,
        end,
    } = styles;
    write!(writer, "{bold}{SPAN_NAME}{end}{bold}{{{end}")?;
    let fields = [
        ("request_id", current.id()),
        ("method", current.method()),
        ("path", current.path()),
    ];
    for (i, (name, value)) in fields.into_iter().enumerate() {
        let space = if i == 0 { "" } else { " " };
        write!(writer, "{space}{italic}{name}{end}{dimmed}={end}{value}")?;
    }
    write!(writer, "{bold}}}{end}{dimmed}:{end}")
}

/// ANSI styles as the library writes them at a terminal; empty otherwise.
struct Styles {
    bold: &'static str,
    dimmed: &'static str,
    italic: &'static str,
    end: &'static str,
}

impl Styles {
    fn new(ansi: bool) -> Styles {
        match ansi {
            true => Styles {
                bold: "\x1b[1m",
                dimmed: "\x1b[2m",
                italic: "\x1b[3m",
                end: "\x1b[0m",
            },
            false => Styles {
                bold: "",
                dimmed: "",
                italic: "",
                end: "",
            },
        }
    }

    /// A level's colour and its end (none where styles are off).
    fn level(&self, level: &Level) -> (&'static str, &'static str) {
        if self.end.is_empty() {
            return ("", "");
        }
        let colour = match *level {
            Level::TRACE => "\x1b[35m",
            Level::DEBUG => "\x1b[34m",
            Level::INFO => "\x1b[32m",
            Level::WARN => "\x1b[33m",
            Level::ERROR => "\x1b[31m",
        };
        (colour, self.end)
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let entry =
            request_id::with_current(|current| current.needs_naming().then(|| json_entry(current)));
        let Some(entry) = entry.flatten() else {
            return self.line.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.line.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&with_request(line, &entry))
    }
}

/// The request as the library writes a span of its in `spans`: the fields in the order of
/// their names (its JSON objects are sorted), then the span's name.
fn json_entry(current: &Current) -> String {
    let text = |value: &str| serde_json::Value::from(value).to_string();
    format!(
        r#"{{"method":{},"path":{},"request_id":{},"name":"{SPAN_NAME}"}}"#,
        text(current.method()),
        text(current.path()),
        text(current.id()),
    )
}

/// The library's JSON line with `entry` first in its `spans`, which it writes last, and only
/// when the line is in a span. `"spans":[` cannot occur elsewhere in a line: every other value
/// it writes is a string, a number or a boolean, and inside strings quotes are escaped.
fn with_request(mut line: String, entry: &str) -> String {
    const SPANS: &str = r#""spans":["#;
    // A line is never worth a panic: one that is not an object (it always is) stays as it is.
    match (line.find(SPANS), line.rfind('}')) {
        (Some(at), _) => line.insert_str(at + SPANS.len(), &format!("{entry},")),
        (None, Some(end)) => line.insert_str(end, &format!(r#","spans":[{entry}]"#)),
        (None, None) => {}
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_goes_first_in_spans_or_makes_them() {
        let entry = r#"{"name":"request"}"#;
        let alone = "{\"level\":\"INFO\",\"fields\":{\"message\":\"a \\\"spans\\\":[ text\"},\"target\":\"t\"}\n";
        assert_eq!(
            with_request(alone.to_string(), entry),
            "{\"level\":\"INFO\",\"fields\":{\"message\":\"a \\\"spans\\\":[ text\"},\"target\":\"t\",\"spans\":[{\"name\":\"request\"}]}\n"
        );
        let nested = "{\"target\":\"t\",\"spans\":[{\"name\":\"query\"}]}\n";
        assert_eq!(
            with_request(nested.to_string(), entry),
            "{\"target\":\"t\",\"spans\":[{\"name\":\"request\"},{\"name\":\"query\"}]}\n"
        );
        assert_eq!(
            with_request("not an object\n".into(), entry),
            "not an object\n"
        );
    }
}

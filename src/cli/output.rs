//! How answers are shown: a table for people, pretty JSON or YAML for scripts, colour only where
//! `anstream` allows it (a terminal, no `NO_COLOR`).

use std::io::Write;

use anstyle::{AnsiColor, Style};
use comfy_table::{Table, presets};
use serde_json::Value;

use super::client::{Failure, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

pub const RED: Style = AnsiColor::Red.on_default();
pub const GREEN: Style = AnsiColor::Green.on_default();
pub const CYAN: Style = AnsiColor::Cyan.on_default();
pub const BOLD: Style = Style::new().bold();

/// `text` in `style`; `anstream` strips the escapes when colour is off.
pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Writes to stdout through `anstream`, which drops colour for pipes and `NO_COLOR`.
pub fn emit(text: &str) {
    let mut out = anstream::stdout();
    // A closed pipe (`| head`) is not worth a panic.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Prints `value` as JSON or YAML, or calls `table` for the people's view.
pub fn show(format: Format, value: &Value, table: impl FnOnce(&Value) -> String) -> Result<()> {
    let text = match format {
        Format::Json => pretty_json(value),
        Format::Yaml => serde_yaml_ng::to_string(value).map_err(Failure::other)?,
        Format::Table => table(value),
    };
    emit(&text);
    Ok(())
}

pub fn pretty_json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// A kubectl-style table: a header row and columns separated by spaces, no borders.
pub fn table<const N: usize>(
    header: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(header);
    for row in rows {
        table.add_row(row.map(|cell| printable(&cell)));
    }
    let mut text = table.trim_fmt();
    text.push('\n');
    text
}

/// The array member `member` of `value` (empty when absent).
pub fn items(value: &Value, member: &str) -> Vec<Value> {
    value
        .get(member)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A scalar member as text for a table cell: strings bare, absent as "-".
pub fn cell(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(text)) => printable(text),
        Some(Value::Array(list)) => list
            .iter()
            .map(|item| {
                item.as_str()
                    .map(printable)
                    .unwrap_or_else(|| item.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// Stored text as a terminal should get it: control characters (escape sequences, newlines)
/// written out as escapes, so text someone stored can neither drive the reader's terminal nor
/// break a line. JSON and YAML output is left as it is (its own escaping applies).
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The first 12 hex digits of a checksum, enough for people to compare.
pub fn short(checksum: &str) -> String {
    checksum.chars().take(12).collect()
}

/// An RFC 3339 time cut to seconds.
pub fn when(value: &Value, key: &str) -> String {
    let text = cell(value, key);
    match text.find('.') {
        Some(dot) => format!("{}Z", &text[..dot]),
        None => text,
    }
}

/// The error line (and the field list) on stderr.
pub fn report(failure: &Failure) {
    let mut err = anstream::stderr();
    let label = paint(RED.bold(), "error:");
    let fields = match failure {
        Failure::Problem {
            status,
            code,
            detail,
            fields,
        } => {
            let _ = writeln!(err, "{label} {detail} ({code}, HTTP {status})");
            fields.as_slice()
        }
        Failure::Invalid { detail, fields } | Failure::Conflict { detail, fields } => {
            let _ = writeln!(err, "{label} {detail}");
            fields.as_slice()
        }
        Failure::Usage(message) | Failure::Other(message) => {
            let _ = writeln!(err, "{label} {message}");
            &[]
        }
        Failure::Quiet(_) => &[],
    };
    for (field, message) in fields {
        let field = if field.is_empty() {
            "(document)"
        } else {
            field
        };
        let _ = writeln!(err, "  {}: {message}", paint(BOLD, field));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_cannot_drive_the_terminal_or_break_a_row() {
        let stored = "ok\u{1b}]52;c;QQ==\u{7}\nnext";
        assert_eq!(printable(stored), "ok\\u{1b}]52;c;QQ==\\u{7}\\nnext");
        assert_eq!(printable("plain text, ünïcode"), "plain text, ünïcode");
        let row = table(["MESSAGE"], [[stored.to_owned()]]);
        assert!(!row.contains('\u{1b}') && row.lines().count() == 2, "{row}");
    }
}

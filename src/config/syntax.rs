//! A TOML syntax error in the `--config` file, described without showing
//! the line: it may hold the token or a password.

use std::path::Path;

/// A TOML syntax error as "line L, column C (key `K`): WHAT". The TOML
/// parser's own message quotes the offending line, which may hold the token
/// or a password: only its first line, the diagnosis, is kept, and only when
/// it quotes nothing from the line.
pub(super) fn describe(path: &Path, cause: &(dyn std::error::Error + 'static)) -> String {
    let Some(error) = cause.downcast_ref::<toml::de::Error>() else {
        return "not valid TOML".to_owned();
    };
    let file = std::fs::read_to_string(path).unwrap_or_default();
    // The parser is handed the text without its byte order mark, so its
    // offsets count from after it.
    let text = file.strip_prefix('\u{feff}').unwrap_or(&file);
    let Some(mut start) = error.span().map(|span| span.start.min(text.len())) else {
        return "not valid TOML".to_owned();
    };
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line_number = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let diagnosis = error.message().lines().next().unwrap_or("").trim();
    let quotes_the_line = diagnosis
        .split(|c: char| c.is_whitespace() || "`'\"".contains(c))
        .filter(|word| word.len() >= 3)
        .any(|word| line.contains(word) && !COMMON_WORDS.contains(&word));
    let what = if diagnosis.is_empty() || quotes_the_line {
        "not valid TOML".to_owned()
    } else {
        diagnosis.to_owned()
    };
    let key = key_of_line(before, line).map_or_else(String::new, |key| format!(" (key `{key}`)"));
    format!(
        "line {line_number}, column {column}{key}: {what} (the line is not shown: it may hold a secret)"
    )
}

/// Words of a diagnosis that say nothing about the line's content.
const COMMON_WORDS: &[&str] = &["key", "value", "string", "table", "array", "true", "false"];

/// The dotted key a line sets, its section included, if it reads as
/// `name = …` (or `name.sub = …`) under `[section]`.
fn key_of_line(before: &str, line: &str) -> Option<String> {
    let is_key = |name: &str| {
        !name.is_empty() && (name.chars()).all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    };
    let name = line.split_once('=')?.0.trim();
    let section = (before.lines().rev())
        .find_map(|l| Some(l.trim().strip_prefix('[')?.split(']').next()?.trim()))
        .filter(|section| is_key(section));
    is_key(name).then(|| section.map_or(name.to_owned(), |section| format!("{section}.{name}")))
}

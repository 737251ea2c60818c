//! Validation failures, collected so that a client learns about every failing field at once.
use serde::Serialize;
use std::fmt;

/// One failing field: where (a JSON-pointer-like dotted path), a stable machine code, and a
/// sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as the client spelled it (`name`, `preferences.recordingLifespanDays`).
    pub field: String,
    /// Stable machine-readable code, e.g. `required`, `too_long`, `invalid_value`.
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Every failing field of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }
    /// Records `e`, once: the same error again (a repeated query parameter) is not listed twice.
    pub fn push(&mut self, e: FieldError) {
        if !self.0.contains(&e) {
            self.0.push(e);
        }
    }
    pub fn add(&mut self, field: impl Into<String>, code: &str, message: impl Into<String>) {
        self.push(FieldError::new(field, code, message));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Records the error of a parse, returning the value when it parsed.
    pub fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(e);
                None
            }
        }
    }
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
    pub fn single(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self(vec![FieldError::new(field, code, message)])
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// True when the text holds a control character (tabs and newlines included).
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Whether `c` is white space as the API document's patterns count it: JSON Schema's `\s`
/// (ECMA-262: Unicode's spaces and line breaks, and U+FEFF, but not U+0085), so that a value
/// trimmed here is valid there exactly when it is valid here.
pub fn is_pattern_space(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

/// `s` without the leading and trailing [`is_pattern_space`] characters.
pub fn trim_pattern_space(s: &str) -> &str {
    s.trim_matches(is_pattern_space)
}

#[cfg(test)]
mod pattern_space_tests {
    use super::*;

    #[test]
    fn trims_what_the_document_counts_as_space() {
        assert_eq!(trim_pattern_space("\u{a0} acme\u{3000}\u{feff}"), "acme");
        // NEL is not `\s` in the document's regular expressions: it stays.
        assert_eq!(trim_pattern_space("\u{85}acme"), "\u{85}acme");
    }
}

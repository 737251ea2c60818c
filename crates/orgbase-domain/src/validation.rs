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

//! Form bodies as the admin pages read them, pure (no hyper): decoding an
//! `application/x-www-form-urlencoded` body into fields, and the field lookups the pages
//! use. The fuzz target `admin_form` (see `crate::fuzzing`) drives this with hostile bodies.

/// Decoded form fields, in the order they were sent.
pub(crate) struct Form(pub(super) Vec<(String, String)>);

impl Form {
    /// Decodes a urlencoded body; `Err` when it is not one (bad UTF-8 after decoding).
    pub fn urlencoded(body: &[u8]) -> Result<Form, String> {
        serde_urlencoded::from_bytes(body)
            .map(Form)
            .map_err(|_| "the form could not be read".to_string())
    }

    /// The fields, as decoded.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The field's value, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn trimmed(&self, name: &str) -> &str {
        self.get(name).trim()
    }

    /// The trimmed value of a field the form carries, `None` when it does not carry it.
    pub fn field(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
    }
}

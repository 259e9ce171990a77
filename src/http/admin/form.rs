//! Form bodies as the admin pages read them, pure (no hyper): decoding an
//! `application/x-www-form-urlencoded` body into fields, and the field lookups the pages
//! use. The fuzz target `admin_form` (see `crate::fuzzing`) drives this with hostile bodies.

/// Decoded form fields, in the order they were sent.
pub(crate) struct Form(pub(super) Vec<(String, String)>);

impl Form {
    /// Decodes a urlencoded body; `Err` when it is not one, or a field is not UTF-8 once
    /// percent-decoded (decoding would store U+FFFD in its place, silently).
    pub fn urlencoded(body: &[u8]) -> Result<Form, String> {
        let utf8 = |s: &[u8]| percent_encoding::percent_decode(s).decode_utf8().is_ok();
        if !body.split(|b| *b == b'&').all(utf8) {
            return Err("the form is not UTF-8 once percent-decoded".to_string());
        }
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

/// The `once` marks of the forms that make a secret, as they came back: the page that
/// shows a secret is the answer to a POST, and a reload of it (or a second click) sends
/// the same form again. Remembering the marks makes one click make one token, key or
/// secret. In memory: after a restart a form sent again makes a second one, as before.
#[derive(Default)]
pub(in crate::http) struct SentForms(std::sync::Mutex<Sent>);

#[derive(Default)]
struct Sent {
    seen: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

/// How many marks are remembered; the oldest go first (a page open for days may then
/// make a secret twice, which is what every form did before).
const SENT_KEEP: usize = 10_000;

impl SentForms {
    /// Whether `once` comes back for the first time; it is remembered.
    pub fn first(&self, once: &str) -> bool {
        let mut sent = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !sent.seen.insert(once.to_string()) {
            return false;
        }
        sent.order.push_back(once.to_string());
        while sent.order.len() > SENT_KEEP {
            if let Some(old) = sent.order.pop_front() {
                sent.seen.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_accepted_once_and_the_oldest_are_forgotten() {
        let sent = SentForms::default();
        assert!(sent.first("a"));
        assert!(!sent.first("a"));
        for i in 0..SENT_KEEP {
            assert!(sent.first(&i.to_string()));
        }
        assert!(sent.first("a"), "forgotten after SENT_KEEP newer marks");
        assert!(!sent.first(&(SENT_KEEP - 1).to_string()));
    }
}

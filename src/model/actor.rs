//! Who caused a change: the one name every audit entry and event carries.

use std::fmt;

/// The kinds of caller scimd knows. The audit log and the events feed spell each one with
/// [`Actor::label`]; none of them ever carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// An IdP calling with a SCIM token an admin created, by the token's id.
    ScimToken(i64),
    /// An OAuth client, by its public `client_id`: its access tokens act as it.
    OAuthClient(String),
    /// An admin of the web UI, by username.
    Admin(String),
    /// The command line, run by whoever holds the database file.
    Cli,
    /// scimd itself, with no request behind it (background jobs).
    System,
    /// The one-time setup link that creates the first admin.
    SetupLink,
    /// A caller that has not proven who it is (a failed login, an unknown client).
    Anonymous,
}

/// Who did something, and in which HTTP request when there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub who: Who,
    /// The request id an operator can find in the service log and on an error page.
    pub request_id: Option<String>,
}

impl Actor {
    /// `who`, acting in request `request_id`.
    pub fn new(who: Who, request_id: Option<&str>) -> Actor {
        Actor {
            who,
            request_id: request_id.map(str::to_string),
        }
    }

    /// The command line.
    pub fn cli() -> Actor {
        Actor::new(Who::Cli, None)
    }

    /// scimd's own background work.
    pub fn system() -> Actor {
        Actor::new(Who::System, None)
    }

    /// An admin in request `request_id`.
    pub fn admin(username: &str, request_id: &str) -> Actor {
        Actor::new(Who::Admin(username.to_string()), Some(request_id))
    }

    /// How the audit log and the events name the actor: `token:<id>`,
    /// `oauth-client:<client_id>`, `admin:<username>`, `cli`, `system`, `setup-link` or
    /// `anonymous`.
    pub fn label(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.who {
            Who::ScimToken(id) => write!(f, "token:{id}"),
            Who::OAuthClient(id) => write!(f, "oauth-client:{id}"),
            Who::Admin(name) => write!(f, "admin:{name}"),
            Who::Cli => f.write_str("cli"),
            Who::System => f.write_str("system"),
            Who::SetupLink => f.write_str("setup-link"),
            Who::Anonymous => f.write_str("anonymous"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_caller_never_a_secret() {
        let cases = [
            (Who::ScimToken(7), "token:7"),
            (
                Who::OAuthClient("okta-prod".into()),
                "oauth-client:okta-prod",
            ),
            (Who::Admin("ada".into()), "admin:ada"),
            (Who::Cli, "cli"),
            (Who::System, "system"),
            (Who::SetupLink, "setup-link"),
            (Who::Anonymous, "anonymous"),
        ];
        for (who, label) in cases {
            assert_eq!(Actor::new(who, Some("r1")).label(), label);
        }
    }
}

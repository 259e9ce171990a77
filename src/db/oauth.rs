//! OAuth 2.0 storage: clients and their redirect URIs, authorization codes, grants (token
//! families) and tokens. Only hashes of secrets, codes and tokens are stored.
//!
//! A grant is one approval of an authorization request (or one client-credentials
//! request); every token issued from it, through any number of refreshes, belongs to it,
//! so revoking the grant revokes the family. A token works while it, its grant and its
//! client are unrevoked and it has not expired.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;
use super::credentials::Found;
use crate::auth::oauth::{GrantType, TokenKind};
use crate::auth::tokens::NewToken;
use crate::scim::datetime;

/// Expired tokens and codes are kept this long (for the reuse checks and the admin's view
/// of recent activity), then swept.
const KEEP_EXPIRED_DAYS: i64 = 7;

/// A registered client, as admins and the endpoints see it (without its secret).
#[derive(Debug, Clone)]
pub struct Client {
    pub id: i64,
    pub tenant_id: i64,
    /// The tenant's slug.
    pub tenant: String,
    pub tenant_name: String,
    pub client_id: String,
    pub name: String,
    pub grant_types: Vec<GrantType>,
    pub redirect_uris: Vec<String>,
    pub created_at: String,
    pub secret_rotated_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl Client {
    /// Whether the client may use `grant` at the token endpoint; refreshing comes with
    /// the authorization-code grant.
    pub fn allows(&self, grant: GrantType) -> bool {
        let g = match grant {
            GrantType::RefreshToken => GrantType::AuthorizationCode,
            g => g,
        };
        self.grant_types.contains(&g)
    }

    pub fn grant_types_text(&self) -> String {
        self.grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What registering a client needs; the caller validated the values.
pub struct NewClient<'a> {
    pub tenant_id: i64,
    pub client_id: &'a str,
    pub name: &'a str,
    pub secret_hash: &'a [u8; 32],
    pub grant_types: &'a [GrantType],
    pub redirect_uris: &'a [String],
}

pub fn create_client(conn: &Connection, c: &NewClient) -> Result<Client, DbError> {
    let grants = c
        .grant_types
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    conn.execute(
        "INSERT INTO oauth_clients (tenant_id, client_id, name, secret_hash, grant_types, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            c.tenant_id,
            c.client_id,
            c.name,
            &c.secret_hash[..],
            grants,
            datetime::now()
        ],
    )?;
    let id = conn.last_insert_rowid();
    for uri in c.redirect_uris {
        conn.execute(
            "INSERT OR IGNORE INTO oauth_redirect_uris (client_id, uri) VALUES (?1, ?2)",
            params![id, uri],
        )?;
    }
    client(conn, None, id)
}

const CLIENT_COLUMNS: &str = "c.id, c.tenant_id, t.slug, t.name, c.client_id, c.name, c.grant_types, \
     c.created_at, c.secret_rotated_at, c.revoked_at";

fn client_from_row(r: &rusqlite::Row) -> rusqlite::Result<Client> {
    let grants: String = r.get(6)?;
    Ok(Client {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        tenant: r.get(2)?,
        tenant_name: r.get(3)?,
        client_id: r.get(4)?,
        name: r.get(5)?,
        grant_types: grants.split(' ').filter_map(|g| g.parse().ok()).collect(),
        redirect_uris: Vec::new(),
        created_at: r.get(7)?,
        secret_rotated_at: r.get(8)?,
        revoked_at: r.get(9)?,
    })
}

fn with_redirect_uris(conn: &Connection, mut c: Client) -> Result<Client, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT uri FROM oauth_redirect_uris WHERE client_id = ?1 ORDER BY rowid",
    )?;
    c.redirect_uris = stmt
        .query_map([c.id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(c)
}

/// Clients, of one tenant or all, oldest first (revoked ones included).
pub fn list_clients(conn: &Connection, tenant_id: Option<i64>) -> Result<Vec<Client>, DbError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {CLIENT_COLUMNS} FROM oauth_clients c JOIN tenants t ON t.id = c.tenant_id
         WHERE ?1 IS NULL OR c.tenant_id = ?1 ORDER BY c.id"
    ))?;
    let rows: Vec<Client> = stmt
        .query_map([tenant_id], client_from_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|c| with_redirect_uris(conn, c))
        .collect()
}

/// Client `id` (of `tenant_id`, when given), revoked or not.
pub fn client(conn: &Connection, tenant_id: Option<i64>, id: i64) -> Result<Client, DbError> {
    let c = conn
        .query_row(
            &format!(
                "SELECT {CLIENT_COLUMNS} FROM oauth_clients c JOIN tenants t ON t.id = c.tenant_id
                 WHERE c.id = ?1 AND (?2 IS NULL OR c.tenant_id = ?2)"
            ),
            params![id, tenant_id],
            client_from_row,
        )
        .optional()?
        .ok_or(DbError::NotFound)?;
    with_redirect_uris(conn, c)
}

/// The client with this public `client_id`, with its secret hash.
pub fn client_by_client_id(
    conn: &Connection,
    client_id: &str,
) -> Result<Option<(Client, Vec<u8>)>, DbError> {
    let found = conn
        .query_row(
            &format!(
                "SELECT {CLIENT_COLUMNS}, c.secret_hash FROM oauth_clients c
                 JOIN tenants t ON t.id = c.tenant_id WHERE c.client_id = ?1"
            ),
            [client_id],
            |r| Ok((client_from_row(r)?, r.get::<_, Vec<u8>>(10)?)),
        )
        .optional()?;
    match found {
        Some((c, hash)) => Ok(Some((with_redirect_uris(conn, c)?, hash))),
        None => Ok(None),
    }
}

/// Replaces the secret of live client `id`: the old secret stops working at once. Tokens
/// already issued keep working (revoke them separately if the secret leaked).
pub fn set_secret(
    conn: &Connection,
    tenant_id: Option<i64>,
    id: i64,
    secret_hash: &[u8; 32],
) -> Result<Client, DbError> {
    let n = conn.execute(
        "UPDATE oauth_clients SET secret_hash = ?3, secret_rotated_at = ?4
         WHERE id = ?1 AND revoked_at IS NULL AND (?2 IS NULL OR tenant_id = ?2)",
        params![id, tenant_id, &secret_hash[..], datetime::now()],
    )?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    // A secret is rotated because it may have leaked: what the old one bought alone (the
    // client credentials grants and their tokens) stops working with it. What an admin
    // approved (authorization-code grants) stays: refreshing it takes the new secret.
    let now = datetime::now();
    conn.execute(
        "UPDATE oauth_tokens SET revoked_at = ?2 WHERE revoked_at IS NULL
         AND grant_id IN (SELECT id FROM oauth_grants WHERE client_id = ?1
                          AND grant_type = 'client_credentials' AND revoked_at IS NULL)",
        params![id, now],
    )?;
    conn.execute(
        "UPDATE oauth_grants SET revoked_at = ?2
         WHERE client_id = ?1 AND grant_type = 'client_credentials' AND revoked_at IS NULL",
        params![id, now],
    )?;
    client(conn, tenant_id, id)
}

/// Revokes live client `id` and everything it was issued: its grants, tokens and codes.
pub fn revoke_client(
    conn: &Connection,
    tenant_id: Option<i64>,
    id: i64,
) -> Result<Client, DbError> {
    let now = datetime::now();
    let n = conn.execute(
        "UPDATE oauth_clients SET revoked_at = ?3
         WHERE id = ?1 AND revoked_at IS NULL AND (?2 IS NULL OR tenant_id = ?2)",
        params![id, tenant_id, now],
    )?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    conn.execute(
        "UPDATE oauth_tokens SET revoked_at = ?2 WHERE revoked_at IS NULL
         AND grant_id IN (SELECT id FROM oauth_grants WHERE client_id = ?1)",
        params![id, now],
    )?;
    conn.execute(
        "UPDATE oauth_grants SET revoked_at = ?2 WHERE client_id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    conn.execute(
        "UPDATE oauth_codes SET used_at = ?2 WHERE client_id = ?1 AND used_at IS NULL",
        params![id, now],
    )?;
    client(conn, tenant_id, id)
}

// --- Authorization codes --------------------------------------------------------------------

/// An authorization code, bound to what the authorization request said.
#[derive(Debug, Clone)]
pub struct Code {
    /// The client's row id.
    pub client: i64,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub code_challenge: Option<String>,
    pub scope: String,
    pub approved_by: String,
    pub expires_at: String,
    pub used_at: Option<String>,
    /// The grant the code was exchanged for.
    pub grant_id: Option<i64>,
}

pub fn insert_code(conn: &Connection, hash: &[u8; 32], code: &Code) -> Result<(), DbError> {
    let now = datetime::now();
    conn.execute(
        "INSERT INTO oauth_codes (hash, client_id, redirect_uri, redirect_uri_given, code_challenge,
           scope, approved_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            &hash[..],
            code.client,
            code.redirect_uri,
            code.redirect_uri_given,
            code.code_challenge,
            code.scope,
            code.approved_by,
            now,
            code.expires_at
        ],
    )?;
    Ok(())
}

pub fn code(conn: &Connection, hash: &[u8; 32]) -> Result<Option<Code>, DbError> {
    Ok(conn
        .query_row(
            "SELECT client_id, redirect_uri, redirect_uri_given, code_challenge, scope, approved_by,
                    expires_at, used_at, grant_id
             FROM oauth_codes WHERE hash = ?1",
            [&hash[..]],
            |r| {
                Ok(Code {
                    client: r.get(0)?,
                    redirect_uri: r.get(1)?,
                    redirect_uri_given: r.get(2)?,
                    code_challenge: r.get(3)?,
                    scope: r.get(4)?,
                    approved_by: r.get(5)?,
                    expires_at: r.get(6)?,
                    used_at: r.get(7)?,
                    grant_id: r.get(8)?,
                })
            },
        )
        .optional()?)
}

/// Marks the code used (by the grant it was exchanged for, if any); `false` if it already
/// was, so two concurrent exchanges cannot both succeed.
pub fn use_code(
    conn: &Connection,
    hash: &[u8; 32],
    grant_id: Option<i64>,
) -> Result<bool, DbError> {
    let n = conn.execute(
        "UPDATE oauth_codes SET used_at = ?2, grant_id = ?3 WHERE hash = ?1 AND used_at IS NULL",
        params![&hash[..], datetime::now(), grant_id],
    )?;
    Ok(n == 1)
}

// --- Grants and tokens ----------------------------------------------------------------------

pub fn create_grant(
    conn: &Connection,
    client: i64,
    grant_type: GrantType,
    scope: &str,
    approved_by: Option<&str>,
) -> Result<i64, DbError> {
    conn.execute(
        "INSERT INTO oauth_grants (client_id, grant_type, scope, approved_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            client,
            grant_type.as_str(),
            scope,
            approved_by,
            datetime::now()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn insert_token(
    conn: &Connection,
    grant_id: i64,
    kind: TokenKind,
    token: &NewToken,
    expires_at: &str,
) -> Result<i64, DbError> {
    conn.execute(
        "INSERT INTO oauth_tokens (grant_id, kind, hash, prefix, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            grant_id,
            kind.as_str(),
            &token.hash[..],
            token.prefix,
            datetime::now(),
            expires_at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A stored token with the state of its grant and client.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: i64,
    pub grant_id: i64,
    /// The client's row id.
    pub client: i64,
    pub tenant_id: i64,
    pub kind: TokenKind,
    pub scope: String,
    pub expires_at: String,
    pub used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub grant_revoked: bool,
    pub client_revoked: bool,
}

impl Token {
    /// Whether the token is unrevoked (itself, its grant, its client) and unexpired.
    pub fn live(&self, now: &str) -> bool {
        self.revoked_at.is_none()
            && !self.grant_revoked
            && !self.client_revoked
            && self.expires_at.as_str() > now
    }
}

pub fn token_by_hash(conn: &Connection, hash: &[u8; 32]) -> Result<Option<Token>, DbError> {
    Ok(conn
        .query_row(
            "SELECT k.id, k.grant_id, g.client_id, c.tenant_id, k.kind, g.scope, k.expires_at,
                    k.used_at, k.revoked_at, g.revoked_at IS NOT NULL, c.revoked_at IS NOT NULL
             FROM oauth_tokens k JOIN oauth_grants g ON g.id = k.grant_id
             JOIN oauth_clients c ON c.id = g.client_id WHERE k.hash = ?1",
            [&hash[..]],
            |r| {
                let kind: String = r.get(4)?;
                Ok(Token {
                    id: r.get(0)?,
                    grant_id: r.get(1)?,
                    client: r.get(2)?,
                    tenant_id: r.get(3)?,
                    kind: kind.parse().unwrap_or(TokenKind::Access),
                    scope: r.get(5)?,
                    expires_at: r.get(6)?,
                    used_at: r.get(7)?,
                    revoked_at: r.get(8)?,
                    grant_revoked: r.get(9)?,
                    client_revoked: r.get(10)?,
                })
            },
        )
        .optional()?)
}

/// Marks refresh token `id` as exchanged; `false` if it already was (a reuse).
pub fn use_refresh_token(conn: &Connection, id: i64) -> Result<bool, DbError> {
    let now = datetime::now();
    let n = conn.execute(
        "UPDATE oauth_tokens SET used_at = ?2, last_used_at = ?2
         WHERE id = ?1 AND kind = 'refresh' AND used_at IS NULL",
        params![id, now],
    )?;
    Ok(n == 1)
}

/// The live tokens issued in `grant_id` after token `spent_id`, if none of them has been
/// used yet (a client that lost the answer of a refresh never used what it carried).
pub fn unused_successors(
    conn: &Connection,
    grant_id: i64,
    spent_id: i64,
) -> Result<Option<Vec<i64>>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, last_used_at IS NOT NULL OR used_at IS NOT NULL FROM oauth_tokens
         WHERE grant_id = ?1 AND id > ?2 AND revoked_at IS NULL",
    )?;
    let rows = stmt
        .query_map(params![grant_id, spent_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    if rows.iter().any(|(_, used)| *used) {
        return Ok(None);
    }
    Ok(Some(rows.into_iter().map(|(id, _)| id).collect()))
}

/// Revokes the tokens `ids` (not their grant).
pub fn revoke_tokens(conn: &Connection, ids: &[i64]) -> Result<(), DbError> {
    let now = datetime::now();
    let mut stmt = conn.prepare_cached(
        "UPDATE oauth_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
    )?;
    for id in ids {
        stmt.execute(params![id, now])?;
    }
    Ok(())
}

/// Revokes a grant and every token of it.
pub fn revoke_grant(conn: &Connection, grant_id: i64) -> Result<(), DbError> {
    let now = datetime::now();
    conn.execute(
        "UPDATE oauth_grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![grant_id, now],
    )?;
    conn.execute(
        "UPDATE oauth_tokens SET revoked_at = ?2 WHERE grant_id = ?1 AND revoked_at IS NULL",
        params![grant_id, now],
    )?;
    Ok(())
}

/// Revokes one token (RFC 7009): an access token alone; a refresh token with its whole
/// grant, since the access tokens were issued on the same authorization.
pub fn revoke_token(conn: &Connection, token: &Token) -> Result<(), DbError> {
    match token.kind {
        TokenKind::Refresh => revoke_grant(conn, token.grant_id),
        TokenKind::Access => {
            conn.execute(
                "UPDATE oauth_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![token.id, datetime::now()],
            )?;
            Ok(())
        }
    }
}

/// The live access token whose hash is `hash`.
pub fn authenticate(
    conn: &Connection,
    hash: &[u8; 32],
    now: &str,
) -> Result<Option<Found>, DbError> {
    Ok(conn
        .query_row(
            "SELECT k.id, c.tenant_id, c.client_id, k.expires_at FROM oauth_tokens k
             JOIN oauth_grants g ON g.id = k.grant_id JOIN oauth_clients c ON c.id = g.client_id
             WHERE k.hash = ?1 AND k.kind = 'access' AND k.revoked_at IS NULL AND k.expires_at > ?2
               AND g.revoked_at IS NULL AND c.revoked_at IS NULL",
            params![&hash[..], now],
            |r| {
                Ok(Found::OAuth {
                    id: r.get(0)?,
                    tenant_id: r.get(1)?,
                    client: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// Whether token `id` was last used before `cutoff` (or never).
pub fn token_used_before(conn: &Connection, id: i64, cutoff: &str) -> Result<bool, DbError> {
    Ok(conn.query_row(
        "SELECT last_used_at IS NULL OR last_used_at < ?2 FROM oauth_tokens WHERE id = ?1",
        params![id, cutoff],
        |r| r.get(0),
    )?)
}

/// Records that token `id` was used at `now`.
pub fn touch_token(conn: &Connection, id: i64, now: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE oauth_tokens SET last_used_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// A live OAuth token as the admin UI lists it.
#[derive(Debug, Clone)]
pub struct LiveToken {
    pub id: i64,
    pub client_name: String,
    pub client_id: String,
    pub kind: String,
    pub prefix: String,
    pub grant_type: String,
    pub approved_by: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: String,
}

/// The tenant's live tokens: unexpired, unrevoked, and (refresh tokens) not yet exchanged.
pub fn live_tokens(
    conn: &Connection,
    tenant_id: Option<i64>,
    now: &str,
) -> Result<Vec<LiveToken>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT k.id, c.name, c.client_id, k.kind, k.prefix, g.grant_type, g.approved_by,
                k.created_at, k.last_used_at, k.expires_at
         FROM oauth_tokens k JOIN oauth_grants g ON g.id = k.grant_id
         JOIN oauth_clients c ON c.id = g.client_id
         WHERE (?1 IS NULL OR c.tenant_id = ?1) AND k.revoked_at IS NULL AND k.used_at IS NULL
           AND k.expires_at > ?2 AND g.revoked_at IS NULL AND c.revoked_at IS NULL
         ORDER BY c.id, k.id DESC",
    )?;
    let rows = stmt
        .query_map(params![tenant_id, now], |r| {
            Ok(LiveToken {
                id: r.get(0)?,
                client_name: r.get(1)?,
                client_id: r.get(2)?,
                kind: r.get(3)?,
                prefix: r.get(4)?,
                grant_type: r.get(5)?,
                approved_by: r.get(6)?,
                created_at: r.get(7)?,
                last_used_at: r.get(8)?,
                expires_at: r.get(9)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Token `id` of the tenant, for the admin UI's revoke button.
pub fn token(conn: &Connection, tenant_id: i64, id: i64) -> Result<Token, DbError> {
    let hash: Vec<u8> = conn
        .query_row(
            "SELECT k.hash FROM oauth_tokens k JOIN oauth_grants g ON g.id = k.grant_id
             JOIN oauth_clients c ON c.id = g.client_id WHERE k.id = ?1 AND c.tenant_id = ?2",
            params![id, tenant_id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(DbError::NotFound)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| DbError::Schema("an OAuth token hash is not 32 bytes".into()))?;
    token_by_hash(conn, &hash)?.ok_or(DbError::NotFound)
}

/// Deletes codes and tokens that expired more than a week ago, and grants left without
/// tokens. Runs whenever tokens are issued, so the tables stay small without a timer.
pub fn sweep(conn: &Connection) -> Result<(), DbError> {
    let cutoff =
        datetime::format(time::OffsetDateTime::now_utc() - time::Duration::days(KEEP_EXPIRED_DAYS));
    conn.execute("DELETE FROM oauth_codes WHERE expires_at < ?1", [&cutoff])?;
    conn.execute("DELETE FROM oauth_tokens WHERE expires_at < ?1", [&cutoff])?;
    conn.execute(
        "DELETE FROM oauth_grants WHERE created_at < ?1
         AND NOT EXISTS (SELECT 1 FROM oauth_tokens k WHERE k.grant_id = oauth_grants.id)",
        [&cutoff],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::oauth;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        super::super::migrations::run(&mut c).unwrap();
        super::super::tenants::ensure_default(&c).unwrap();
        c
    }

    fn new_client(c: &Connection, grants: &[GrantType], uris: &[String]) -> (Client, String) {
        let secret = oauth::generate_client_secret();
        let client = create_client(
            c,
            &NewClient {
                tenant_id: 1,
                client_id: &oauth::generate_client_id(),
                name: "Okta",
                secret_hash: &secret.hash,
                grant_types: grants,
                redirect_uris: uris,
            },
        )
        .unwrap();
        (client, secret.secret)
    }

    fn issue(c: &Connection, grant: i64, kind: TokenKind, expires_at: &str) -> NewToken {
        let t = oauth::generate_token(kind);
        insert_token(c, grant, kind, &t, expires_at).unwrap();
        t
    }

    #[test]
    fn tokens_authenticate_until_revoked_with_their_grant_or_client() {
        let c = db();
        let uri = "https://system-admin.okta.com/admin/app/cpc/acme_app/oauth/callback".to_string();
        let (client, secret) = new_client(
            &c,
            &[GrantType::AuthorizationCode],
            std::slice::from_ref(&uri),
        );
        assert_eq!(client.redirect_uris, vec![uri]);
        assert!(client.allows(GrantType::RefreshToken));
        assert!(!client.allows(GrantType::ClientCredentials));
        let (found, hash) = client_by_client_id(&c, &client.client_id).unwrap().unwrap();
        assert_eq!(found.id, client.id);
        assert!(oauth::secret_matches(&secret, &hash));

        let now = datetime::now();
        let later = "9999-01-01T00:00:00.000000Z";
        let grant = create_grant(
            &c,
            client.id,
            GrantType::AuthorizationCode,
            "scim",
            Some("alice"),
        )
        .unwrap();
        let access = issue(&c, grant, TokenKind::Access, later);
        let refresh = issue(&c, grant, TokenKind::Refresh, later);
        let Some(Found::OAuth {
            tenant_id,
            client: client_id,
            ..
        }) = authenticate(&c, &access.hash, &now).unwrap()
        else {
            panic!("the access token authenticates")
        };
        assert_eq!(
            (tenant_id, client_id.as_str()),
            (1, client.client_id.as_str())
        );
        assert!(
            authenticate(&c, &refresh.hash, &now).unwrap().is_none(),
            "a refresh token is not an access token"
        );
        assert_eq!(live_tokens(&c, Some(1), &now).unwrap().len(), 2);

        // Expired.
        let old = issue(&c, grant, TokenKind::Access, "2000-01-01T00:00:00.000000Z");
        assert!(authenticate(&c, &old.hash, &now).unwrap().is_none());

        // Rotation: the first use wins, the second is a reuse.
        let r = token_by_hash(&c, &refresh.hash).unwrap().unwrap();
        assert!(use_refresh_token(&c, r.id).unwrap());
        assert!(!use_refresh_token(&c, r.id).unwrap());

        // Revoking the refresh token revokes the family.
        revoke_token(&c, &r).unwrap();
        assert!(authenticate(&c, &access.hash, &now).unwrap().is_none());

        // Revoking the client kills its other grants too.
        let grant2 =
            create_grant(&c, client.id, GrantType::AuthorizationCode, "scim", None).unwrap();
        let access2 = issue(&c, grant2, TokenKind::Access, later);
        assert!(authenticate(&c, &access2.hash, &now).unwrap().is_some());
        revoke_client(&c, Some(1), client.id).unwrap();
        assert!(authenticate(&c, &access2.hash, &now).unwrap().is_none());
        assert!(matches!(
            revoke_client(&c, Some(1), client.id),
            Err(DbError::NotFound)
        ));
        assert!(live_tokens(&c, Some(1), &now).unwrap().is_empty());
    }

    #[test]
    fn codes_are_single_use_and_rotating_the_secret_replaces_it() {
        let c = db();
        let (client, old_secret) = new_client(&c, &[GrantType::ClientCredentials], &[]);
        let code = oauth::generate_code();
        insert_code(
            &c,
            &code.hash,
            &Code {
                client: client.id,
                redirect_uri: "https://a.example/cb".into(),
                redirect_uri_given: true,
                code_challenge: None,
                scope: "scim".into(),
                approved_by: "alice".into(),
                expires_at: "9999-01-01T00:00:00.000000Z".into(),
                used_at: None,
                grant_id: None,
            },
        )
        .unwrap();
        assert!(code_exists(&c, &code.hash));
        assert!(use_code(&c, &code.hash, None).unwrap());
        assert!(!use_code(&c, &code.hash, None).unwrap());

        let new = oauth::generate_client_secret();
        set_secret(&c, Some(1), client.id, &new.hash).unwrap();
        let (_, hash) = client_by_client_id(&c, &client.client_id).unwrap().unwrap();
        assert!(!oauth::secret_matches(&old_secret, &hash));
        assert!(oauth::secret_matches(&new.secret, &hash));
        assert!(matches!(
            set_secret(&c, Some(2), client.id, &new.hash),
            Err(DbError::NotFound)
        ));
        sweep(&c).unwrap();
    }

    fn code_exists(c: &Connection, hash: &[u8; 32]) -> bool {
        code(c, hash).unwrap().is_some()
    }
}

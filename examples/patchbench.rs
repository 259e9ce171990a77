//! How long one huge PATCH holds the write lock. Every tenant's writes queue on that one
//! lock (`Db::write`), so a 1000-operation PATCH (the most one request may carry) must cost
//! what it touches, not the size of the attribute once per operation. Run by hand; results
//! are recorded in `BENCHMARKS.md` ("One huge PATCH").
//!
//! ```sh
//! cargo run --release --example patchbench
//! cargo run --release --example patchbench -- 5     # repetitions per scenario (default 3)
//! ```
//!
//! Each scenario runs the real use case (`ops::users::patch`, `ops::groups::patch`) on a
//! fresh SQLite file with no other writer, so its wall time is the time the write lock is
//! held (queueing, the transaction, its commit) plus one hop to the blocking pool. The pure
//! part (`scim::patch::apply` alone) is timed too.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use scimd::db::{self, Db, Durability};
use scimd::model::Actor;
use scimd::ops;
use scimd::scim::patch;
use scimd::scim::schema::USER_RESOURCE;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const OPS: usize = patch::MAX_OPERATIONS;

fn patch_body(ops: Vec<Value>) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// 1000 `add emails` operations, one new address each.
fn add_emails() -> Value {
    patch_body(
        (0..OPS)
            .map(|i| json!({"op": "add", "path": "emails", "value": [{"value": format!("e{i}@example.com"), "type": "other"}]}))
            .collect(),
    )
}

/// 1000 filtered replaces, each naming a different element of a list it grows.
fn filtered_emails() -> Value {
    patch_body(
        (0..OPS)
            .map(|i| json!({"op": "add", "path": format!("emails[value eq \"f{i}@example.com\"].type"), "value": "work"}))
            .collect(),
    )
}

/// 1000 operations each adding one member.
fn add_members(ids: &[String]) -> Value {
    patch_body(
        ids.iter()
            .map(|id| json!({"op": "add", "path": "members", "value": [{"value": id}]}))
            .collect(),
    )
}

/// 1000 operations each removing one member by filter (Okta, Entra).
fn remove_members(ids: &[String]) -> Value {
    patch_body(
        ids.iter()
            .map(|id| json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")}))
            .collect(),
    )
}

fn main() -> Result<(), BoxError> {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run(reps))
}

fn report(name: &str, times: &[Duration]) {
    let ms: Vec<String> = times
        .iter()
        .map(|t| format!("{:.1}", t.as_secs_f64() * 1000.0))
        .collect();
    let best = times.iter().min().expect("a run");
    println!(
        "{name:<48} best {:>8.1} ms   runs [{}] ms",
        best.as_secs_f64() * 1000.0,
        ms.join(", ")
    );
}

async fn run(reps: usize) -> Result<(), BoxError> {
    // The pure part alone.
    for (name, body) in [
        ("apply: 1000 x add emails", add_emails()),
        (
            "apply: 1000 x add emails[value eq ..].type",
            filtered_emails(),
        ),
    ] {
        let ops = patch::parse(body)?;
        let mut times = Vec::new();
        for _ in 0..reps {
            let mut data = scimd::fuzzing::sample_user();
            let start = Instant::now();
            patch::apply(&USER_RESOURCE, &mut data, &ops)?;
            times.push(start.elapsed());
        }
        report(name, &times);
    }

    let dir = tempfile::tempdir()?;
    let db = Db::open(&dir.path().join("scimd.db"), Durability::Full)?;
    let tenant = db::tenants::by_slug(&*db.conn()?, db::tenants::DEFAULT_SLUG)?.id;
    let actor = Actor::cli();

    // Users PATCH: a fresh user each run, so every run adds 1000 new addresses.
    for (name, body) in [
        ("users::patch: 1000 x add emails", add_emails()),
        (
            "users::patch: 1000 x add emails[value eq ..].type",
            filtered_emails(),
        ),
    ] {
        let mut times = Vec::new();
        for r in 0..reps {
            let user = ops::users::create(
                &db,
                &actor,
                tenant,
                json!({"userName": format!("{name}-{r}"), "emails": [{"value": "first@example.com", "primary": true}]}),
            )
            .await?;
            let ops = patch::parse(body.clone())?;
            let start = Instant::now();
            let view = ops::users::patch(&db, &actor, tenant, user.row.id, ops, Default::default())
                .await?;
            times.push(start.elapsed());
            let emails = view.row.data["emails"].as_array().map_or(0, Vec::len);
            assert_eq!(emails, OPS + 1, "every address landed");
        }
        report(name, &times);
    }

    // Groups PATCH: 1000 users, added one operation each, then removed one operation each.
    let mut ids = Vec::new();
    for i in 0..OPS {
        let body = json!({"userName": format!("member{i}@example.com")});
        ids.push(ops::users::create(&db, &actor, tenant, body).await?.row.id);
    }
    let (mut adds, mut removes) = (Vec::new(), Vec::new());
    for r in 0..reps {
        let group =
            ops::groups::create(&db, &actor, tenant, json!({"displayName": format!("g{r}")}))
                .await?;
        let id = group.row.id.clone();
        let start = Instant::now();
        ops::groups::patch(
            &db,
            &actor,
            tenant,
            id.clone(),
            patch::parse(add_members(&ids))?,
            Default::default(),
            false,
        )
        .await?;
        adds.push(start.elapsed());
        let start = Instant::now();
        ops::groups::patch(
            &db,
            &actor,
            tenant,
            id,
            patch::parse(remove_members(&ids))?,
            Default::default(),
            false,
        )
        .await?;
        removes.push(start.elapsed());
    }
    report("groups::patch: 1000 x add members", &adds);
    report("groups::patch: 1000 x remove members[value eq]", &removes);
    Ok(())
}

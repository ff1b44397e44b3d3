//! SQL for the log tables. Functions take any executor so they run on the pool or inside the
//! sequencer's transaction alike.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Row};

use super::entry::{EntryFields, Hash};

/// An entry as the intake hands it to the sequencer: everything but its place in the chain.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub log_name: String,
    pub kind: String,
    pub received_at: DateTime<Utc>,
    pub delivery_id: String,
    pub event: String,
    pub hook_id: Option<String>,
    pub installation_target_type: Option<String>,
    pub installation_target_id: Option<String>,
    pub signature: Option<String>,
    pub body: Bytes,
    pub body_sha256: Hash,
    pub body_readable: bool,
}

impl NewEntry {
    /// The hashed fields of this entry once placed at `seq` after `prev_hash`.
    pub fn fields(&self, seq: u64, prev_hash: Hash) -> EntryFields<'_> {
        EntryFields {
            log_name: &self.log_name,
            seq,
            prev_hash,
            received_at: self.received_at,
            kind: &self.kind,
            delivery_id: &self.delivery_id,
            event: &self.event,
            hook_id: self.hook_id.as_deref(),
            installation_target_type: self.installation_target_type.as_deref(),
            installation_target_id: self.installation_target_id.as_deref(),
            signature: self.signature.as_deref(),
            body_sha256: self.body_sha256,
        }
    }
}

/// A log's identity and current size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHead {
    pub log_id: i64,
    pub name: String,
    pub size: u64,
    pub head_hash: Option<Hash>,
}

/// The id of the log called `name`, creating it on first use.
pub async fn ensure_log(conn: impl PgExecutor<'_> + Copy, name: &str) -> sqlx::Result<i64> {
    sqlx::query("INSERT INTO logs (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(conn)
        .await?;
    sqlx::query_scalar("SELECT id FROM logs WHERE name = $1")
        .bind(name)
        .fetch_one(conn)
        .await
}

/// First key of the advisory locks that serialize appends ("verd").
const LOCK_NAMESPACE: i32 = 0x7665_7264;

/// Serializes appends to one log across every process on the database, until the transaction
/// ends. The first key is a fixed namespace so verdict's locks never meet anyone else's.
pub async fn lock_log(conn: impl PgExecutor<'_>, log_id: i64) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(LOCK_NAMESPACE)
        .bind(i32::try_from(log_id).expect("fewer than 2^31 logs"))
        .execute(conn)
        .await?;
    Ok(())
}

/// `(next seq, hash of the last entry)` of a log.
pub async fn tail(conn: impl PgExecutor<'_>, log_id: i64) -> sqlx::Result<(u64, Hash)> {
    let row = sqlx::query(
        "SELECT seq, entry_hash FROM log_entries WHERE log_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(log_id)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => (0, super::entry::GENESIS_PREV_HASH),
        Some(row) => {
            let seq: i64 = row.get(0);
            let hash: Vec<u8> = row.get(1);
            (seq as u64 + 1, to_hash(&hash))
        }
    })
}

/// Where already-stored deliveries are: `(delivery_id, log name, seq)`.
pub async fn find_deliveries(
    conn: impl PgExecutor<'_>,
    kind: &str,
    delivery_ids: Vec<String>,
) -> sqlx::Result<Vec<(String, String, u64)>> {
    // Planned afresh each time (not persistent): a plan cached while the log was empty reads
    // the whole delivery index, which made every batch slower as the log grew. LATERAL keeps
    // each id one unique-index probe.
    let rows = sqlx::query(
        "SELECT e.delivery_id, l.name, e.seq FROM UNNEST($2::text[]) AS d(id)
           CROSS JOIN LATERAL (SELECT x.delivery_id, x.log_id, x.seq FROM log_entries x
                                WHERE x.kind = $1 AND x.delivery_id = d.id) e
           JOIN logs l ON l.id = e.log_id",
    )
    .persistent(false)
    .bind(kind.to_string())
    .bind(delivery_ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get::<i64, _>(2) as u64))
        .collect())
}

/// The first position of each of `bodies` (SHA-256 of GitHub delivery bodies) in a log.
pub async fn find_bodies(
    conn: impl PgExecutor<'_>,
    log_id: i64,
    bodies: &[Hash],
) -> sqlx::Result<std::collections::HashMap<Hash, u64>> {
    let hashes: Vec<&[u8]> = bodies.iter().map(|h| &h[..]).collect();
    let rows = sqlx::query(
        "SELECT b.h, (SELECT x.seq FROM log_entries x
                       WHERE x.log_id = $1 AND x.kind = 'github-delivery' AND x.body_sha256 = b.h
                       ORDER BY x.seq LIMIT 1)
           FROM UNNEST($2::bytea[]) AS b(h)",
    )
    .persistent(false)
    .bind(log_id)
    .bind(hashes)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let seq: Option<i64> = r.get(1);
            Some((to_hash(&r.get::<Vec<u8>, _>(0)), seq? as u64))
        })
        .collect())
}

/// An entry with its computed chain position, ready to insert.
pub struct PlacedEntry<'a> {
    pub entry: &'a NewEntry,
    pub seq: u64,
    pub prev_hash: Hash,
    pub entry_hash: Hash,
}

/// Inserts a run of consecutive entries of one log in a single statement, inside the caller's
/// transaction (which holds the log's lock). UNNEST yields rows in array order, which is seq
/// order; were it ever not to, the chain trigger would refuse the insert rather than store a
/// broken chain. (An ORDER BY here would sort multi-kilobyte rows, spilling to disk for large
/// batches.)
pub async fn insert_entries(
    conn: impl PgExecutor<'_>,
    log_id: i64,
    placed: &[PlacedEntry<'_>],
) -> sqlx::Result<()> {
    bind_entries(
        sqlx::query(
            "INSERT INTO log_entries (log_id, seq, kind, prev_hash, entry_hash, received_at,
                 delivery_id, event, hook_id, installation_target_type, installation_target_id,
                 signature, body_sha256, body, body_readable)
             SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::bytea[], $5::bytea[],
                 $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                 $12::text[], $13::bytea[], $14::bytea[], $15::boolean[])",
        ),
        log_id,
        placed,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Like [`insert_entries`], as one statement that is its own transaction: it takes the log's
/// advisory lock before producing any row, so appends from every process still queue on the
/// lock, then inserts. Nothing is stored if any row is refused.
pub async fn append_entries_locked(
    conn: impl PgExecutor<'_>,
    log_id: i64,
    placed: &[PlacedEntry<'_>],
) -> sqlx::Result<()> {
    bind_entries(
        sqlx::query(
            "INSERT INTO log_entries (log_id, seq, kind, prev_hash, entry_hash, received_at,
                 delivery_id, event, hook_id, installation_target_type, installation_target_id,
                 signature, body_sha256, body, body_readable)
             SELECT $1, u.* FROM (SELECT pg_advisory_xact_lock($16, $1::integer)) AS lock,
                 UNNEST($2::bigint[], $3::text[], $4::bytea[], $5::bytea[],
                 $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                 $12::text[], $13::bytea[], $14::bytea[], $15::boolean[]) AS u",
        ),
        log_id,
        placed,
    )
    .bind(LOCK_NAMESPACE)
    .execute(conn)
    .await?;
    Ok(())
}

/// Binds `$1` to `$15` of the two inserts above.
fn bind_entries<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    log_id: i64,
    placed: &'q [PlacedEntry<'_>],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let n = placed.len();
    let mut seq = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut prev = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    let mut received = Vec::with_capacity(n);
    let mut delivery = Vec::with_capacity(n);
    let mut event = Vec::with_capacity(n);
    let mut hook = Vec::with_capacity(n);
    let mut target_type = Vec::with_capacity(n);
    let mut target_id = Vec::with_capacity(n);
    let mut signature = Vec::with_capacity(n);
    let mut body_sha = Vec::with_capacity(n);
    let mut body = Vec::with_capacity(n);
    let mut is_json = Vec::with_capacity(n);
    for p in placed {
        let e = p.entry;
        seq.push(p.seq as i64);
        kind.push(e.kind.as_str());
        prev.push(&p.prev_hash[..]);
        hash.push(&p.entry_hash[..]);
        received.push(e.received_at);
        delivery.push(e.delivery_id.as_str());
        event.push(e.event.as_str());
        hook.push(e.hook_id.as_deref());
        target_type.push(e.installation_target_type.as_deref());
        target_id.push(e.installation_target_id.as_deref());
        signature.push(e.signature.as_deref());
        body_sha.push(&e.body_sha256[..]);
        body.push(&e.body[..]);
        is_json.push(e.body_readable);
    }
    query
        .bind(log_id)
        .bind(seq)
        .bind(kind)
        .bind(prev)
        .bind(hash)
        .bind(received)
        .bind(delivery)
        .bind(event)
        .bind(hook)
        .bind(target_type)
        .bind(target_id)
        .bind(signature)
        .bind(body_sha)
        .bind(body)
        .bind(is_json)
}

/// Every log with its size and head hash, by name.
pub async fn heads(conn: impl PgExecutor<'_>) -> sqlx::Result<Vec<LogHead>> {
    let rows = sqlx::query(
        "SELECT l.id, l.name, t.seq, t.entry_hash FROM logs l
           LEFT JOIN LATERAL (SELECT seq, entry_hash FROM log_entries e WHERE e.log_id = l.id
                               ORDER BY seq DESC LIMIT 1) t ON true
          ORDER BY l.name",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let seq: Option<i64> = r.get(2);
            let hash: Option<Vec<u8>> = r.get(3);
            LogHead {
                log_id: r.get(0),
                name: r.get(1),
                size: seq.map_or(0, |s| s as u64 + 1),
                head_hash: hash.map(|h| to_hash(&h)),
            }
        })
        .collect())
}

/// A stored entry, as read back for verification and display.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub seq: u64,
    pub kind: String,
    pub prev_hash: Vec<u8>,
    pub entry_hash: Vec<u8>,
    pub received_at: DateTime<Utc>,
    pub delivery_id: String,
    pub event: String,
    pub hook_id: Option<String>,
    pub installation_target_type: Option<String>,
    pub installation_target_id: Option<String>,
    pub signature: Option<String>,
    pub body_sha256: Vec<u8>,
    /// Empty when the body was redacted.
    pub body: Vec<u8>,
    pub body_readable: bool,
    /// The body was erased by a redaction (its hash is kept; a `verdict-redaction` entry later
    /// in the log says who, when and why).
    pub redacted: bool,
    /// The redacted copy kept in its place, where the query read it.
    pub copy: Option<Vec<u8>>,
}

impl StoredEntry {
    /// The bytes projections and pages read: the body, or for a redacted entry its redacted
    /// copy (`None` when it has none: nothing is derived from it any more).
    pub fn readable_body(&self) -> Option<&[u8]> {
        if self.redacted {
            self.copy.as_deref()
        } else {
            Some(&self.body)
        }
    }

    /// The hashed fields as stored (malformed stored hashes read as all-0xff, which never
    /// verifies), for recomputing this entry's hash.
    pub fn fields<'a>(&'a self, log_name: &'a str) -> EntryFields<'a> {
        let hash = |b: &[u8]| b.try_into().unwrap_or([0xff; 32]);
        EntryFields {
            log_name,
            seq: self.seq,
            prev_hash: hash(&self.prev_hash),
            received_at: self.received_at,
            kind: &self.kind,
            delivery_id: &self.delivery_id,
            event: &self.event,
            hook_id: self.hook_id.as_deref(),
            installation_target_type: self.installation_target_type.as_deref(),
            installation_target_id: self.installation_target_id.as_deref(),
            signature: self.signature.as_deref(),
            body_sha256: hash(&self.body_sha256),
        }
    }

    pub fn from_row(r: &sqlx::postgres::PgRow) -> Self {
        StoredEntry {
            seq: r.get::<i64, _>("seq") as u64,
            kind: r.get("kind"),
            prev_hash: r.get("prev_hash"),
            entry_hash: r.get("entry_hash"),
            received_at: r.get("received_at"),
            delivery_id: r.get("delivery_id"),
            event: r.get("event"),
            hook_id: r.get("hook_id"),
            installation_target_type: r.get("installation_target_type"),
            installation_target_id: r.get("installation_target_id"),
            signature: r.get("signature"),
            body_sha256: r.get("body_sha256"),
            redacted: r.get::<Option<Vec<u8>>, _>("body").is_none(),
            body: r.get::<Option<Vec<u8>>, _>("body").unwrap_or_default(),
            body_readable: r.get("body_readable"),
            copy: r.try_get::<Option<Vec<u8>>, _>("copy").ok().flatten(),
        }
    }
}

/// Up to `limit` entries of a log from `from_seq` on, in order.
pub async fn entries_from(
    conn: impl PgExecutor<'_>,
    log_id: i64,
    from_seq: u64,
    limit: i64,
) -> sqlx::Result<Vec<StoredEntry>> {
    let rows = sqlx::query(
        "SELECT e.seq, e.kind, e.prev_hash, e.entry_hash, e.received_at, e.delivery_id, e.event,
                e.hook_id, e.installation_target_type, e.installation_target_id, e.signature,
                e.body_sha256, e.body, e.body_readable, c.body AS copy
           FROM log_entries e
           LEFT JOIN redacted_copies c ON c.log_id = e.log_id AND c.seq = e.seq
          WHERE e.log_id = $1 AND e.seq >= $2 ORDER BY e.seq LIMIT $3",
    )
    .bind(log_id)
    .bind(from_seq as i64)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(StoredEntry::from_row).collect())
}

/// Like [`entries_from`], without the bodies: everything the entry hash commits to (the body
/// through its stored SHA-256), for checking hashes and links quickly.
pub async fn headers_from(
    conn: impl PgExecutor<'_>,
    log_id: i64,
    from_seq: u64,
    limit: i64,
) -> sqlx::Result<Vec<StoredEntry>> {
    let rows = sqlx::query(
        "SELECT seq, kind, prev_hash, entry_hash, received_at, delivery_id, event, hook_id,
                installation_target_type, installation_target_id, signature, body_sha256,
                ''::bytea AS body, body_readable
           FROM log_entries WHERE log_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
    )
    .bind(log_id)
    .bind(from_seq as i64)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(StoredEntry::from_row).collect())
}

/// One entry of a log, by position.
pub async fn entry_at(
    conn: impl PgExecutor<'_>,
    log_name: &str,
    seq: u64,
) -> sqlx::Result<Option<StoredEntry>> {
    let row = sqlx::query(
        "SELECT e.seq, e.kind, e.prev_hash, e.entry_hash, e.received_at, e.delivery_id, e.event,
                e.hook_id, e.installation_target_type, e.installation_target_id, e.signature,
                e.body_sha256, e.body, e.body_readable, c.body AS copy
           FROM log_entries e JOIN logs l ON l.id = e.log_id
           LEFT JOIN redacted_copies c ON c.log_id = e.log_id AND c.seq = e.seq
          WHERE l.name = $1 AND e.seq = $2",
    )
    .bind(log_name)
    .bind(seq as i64)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(StoredEntry::from_row))
}

fn to_hash(bytes: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    if bytes.len() == 32 {
        h.copy_from_slice(bytes);
    }
    h
}

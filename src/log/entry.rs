//! The entry hash: the one piece of the log format every verifier must reproduce bit for bit.
//! docs/log-format.md is the normative description; this file implements it.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// `prev_hash` of the first entry of every log.
pub const GENESIS_PREV_HASH: Hash = [0u8; 32];

/// Domain-separation tag, the first field of every encoding; bumped if the format ever changes.
pub const ENTRY_HASH_TAG: &[u8] = b"verdict/log-entry/v1";

/// Entry kind of a GitHub webhook delivery. Later kinds (verdict's own findings) share the chain.
pub const KIND_GITHUB_DELIVERY: &str = "github-delivery";

/// Entry kind of verdict's own judgments: a finding of an accountability rule.
pub const KIND_FINDING: &str = "verdict-finding";

/// Entry kind of a person's acknowledgement of a finding (a note, never an edit).
pub const KIND_ACK: &str = "verdict-ack";

/// Entry kind of one reconciliation of GitHub's list of deliveries with the log: what was
/// checked, what was missing and asked for again, and any window GitHub no longer lists.
pub const KIND_RECONCILIATION: &str = "verdict-reconciliation";

/// Entry kind of an object read from GitHub's REST API (history from before the App was
/// installed): its exact bytes as GitHub sent them, not a signed delivery.
pub const KIND_GITHUB_API: &str = "github-api";

/// Entry kind of the withdrawal of an earlier finding that records arriving later showed
/// wrong (findings are never edited).
pub const KIND_FINDING_WITHDRAWN: &str = "verdict-finding-withdrawn";

/// The handover of a log's checkpoint signing key: a note signed by the old key and the new
/// (see docs/log-format.md and [`crate::log::keys`]).
pub const KIND_KEY_ROTATION: &str = "verdict-key-rotation";
/// The erasure of an entry's body, with who, when and why (docs/log-format.md).
pub const KIND_REDACTION: &str = "verdict-redaction";

/// Everything the entry hash commits to. Optional GitHub headers that were absent are `None`
/// and encode exactly like an empty value (GitHub never sends empty values for them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFields<'a> {
    pub log_name: &'a str,
    pub seq: u64,
    pub prev_hash: Hash,
    pub received_at: DateTime<Utc>,
    pub kind: &'a str,
    pub delivery_id: &'a str,
    pub event: &'a str,
    pub hook_id: Option<&'a str>,
    pub installation_target_type: Option<&'a str>,
    pub installation_target_id: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body_sha256: Hash,
}

impl EntryFields<'_> {
    /// The injective byte string that is hashed: each field as a 4-byte big-endian length
    /// followed by its bytes, in a fixed order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let seq = self.seq.to_be_bytes();
        let micros = self.received_at.timestamp_micros().to_be_bytes();
        let fields: [&[u8]; 13] = [
            ENTRY_HASH_TAG,
            self.log_name.as_bytes(),
            &seq,
            &self.prev_hash,
            &micros,
            self.kind.as_bytes(),
            self.delivery_id.as_bytes(),
            self.event.as_bytes(),
            self.hook_id.unwrap_or("").as_bytes(),
            self.installation_target_type.unwrap_or("").as_bytes(),
            self.installation_target_id.unwrap_or("").as_bytes(),
            self.signature.unwrap_or("").as_bytes(),
            &self.body_sha256,
        ];
        for field in fields {
            let len = u32::try_from(field.len()).expect("entry field longer than 4 GiB");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }

    /// SHA-256 of [`Self::encode`].
    pub fn entry_hash(&self) -> Hash {
        Sha256::digest(self.encode()).into()
    }
}

/// An entry's hashed fields read back from [`EntryFields::encode`]'s bytes (as carried in
/// a record's proof file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEntry {
    pub log_name: String,
    pub seq: u64,
    pub prev_hash: Hash,
    pub received_at: DateTime<Utc>,
    pub kind: String,
    pub delivery_id: String,
    pub event: String,
    pub hook_id: String,
    pub installation_target_type: String,
    pub installation_target_id: String,
    pub signature: String,
    pub body_sha256: Hash,
}

impl DecodedEntry {
    /// Decodes exactly the 13 length-prefixed fields, or `None` if the bytes are anything else.
    pub fn decode(bytes: &[u8]) -> Option<DecodedEntry> {
        let mut fields: Vec<&[u8]> = Vec::with_capacity(13);
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            fields.push(rest.get(4..4 + len)?);
            rest = &rest[4 + len..];
        }
        if fields.len() != 13 || fields[0] != ENTRY_HASH_TAG {
            return None;
        }
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
        let hash = |b: &[u8]| <Hash>::try_from(b).ok();
        let micros = i64::from_be_bytes(fields[4].try_into().ok()?);
        Some(DecodedEntry {
            log_name: text(fields[1])?,
            seq: u64::from_be_bytes(fields[2].try_into().ok()?),
            prev_hash: hash(fields[3])?,
            received_at: DateTime::from_timestamp_micros(micros)?,
            kind: text(fields[5])?,
            delivery_id: text(fields[6])?,
            event: text(fields[7])?,
            hook_id: text(fields[8])?,
            installation_target_type: text(fields[9])?,
            installation_target_id: text(fields[10])?,
            signature: text(fields[11])?,
            body_sha256: hash(fields[12])?,
        })
    }
}

/// SHA-256 of a raw body.
pub fn body_hash(body: &[u8]) -> Hash {
    Sha256::digest(body).into()
}

/// Parses 64 lowercase or uppercase hex digits into a hash.
pub fn parse_hash(hex_str: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> EntryFields<'static> {
        EntryFields {
            log_name: "octo-org",
            seq: 0,
            prev_hash: GENESIS_PREV_HASH,
            received_at: Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap(),
            kind: KIND_GITHUB_DELIVERY,
            delivery_id: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            event: "ping",
            hook_id: Some("42"),
            installation_target_type: None,
            installation_target_id: None,
            signature: Some("sha256=00"),
            body_sha256: body_hash(b"{}"),
        }
    }

    #[test]
    fn decoding_reverses_encoding() {
        let e = sample();
        let d = DecodedEntry::decode(&e.encode()).unwrap();
        assert_eq!(
            (d.log_name.as_str(), d.seq, d.event.as_str()),
            ("octo-org", 0, "ping")
        );
        assert_eq!(d.received_at, e.received_at);
        assert_eq!(d.body_sha256, e.body_sha256);
        assert_eq!(d.hook_id, "42");
        let mut longer = e.encode();
        longer.push(0);
        assert!(DecodedEntry::decode(&longer).is_none());
    }

    #[test]
    fn encoding_is_length_prefixed_in_documented_order() {
        let enc = sample().encode();
        assert_eq!(&enc[..4], &(ENTRY_HASH_TAG.len() as u32).to_be_bytes());
        assert_eq!(&enc[4..4 + ENTRY_HASH_TAG.len()], ENTRY_HASH_TAG);
        let rest = &enc[4 + ENTRY_HASH_TAG.len()..];
        assert_eq!(&rest[..4], &8u32.to_be_bytes());
        assert_eq!(&rest[4..12], b"octo-org");
        // 13 fields: 13 length prefixes + contents (the two absent target headers are empty).
        let content: usize = [20, 8, 8, 32, 8, 15, 36, 4, 2, 0, 0, 9, 32].iter().sum();
        assert_eq!(enc.len(), 13 * 4 + content);
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_hash() {
        let a = sample();
        let mut b = sample();
        // "42" + "" vs "4" + "2": a naive concatenation would collide.
        b.hook_id = Some("4");
        b.installation_target_type = Some("2");
        assert_ne!(a.entry_hash(), b.entry_hash());
    }

    #[test]
    fn every_field_is_committed_to() {
        let base = sample().entry_hash();
        let mut s = sample();
        s.seq = 1;
        assert_ne!(s.entry_hash(), base);
        let mut s = sample();
        s.received_at += chrono::Duration::microseconds(1);
        assert_ne!(s.entry_hash(), base);
        let mut s = sample();
        s.prev_hash[31] ^= 1;
        assert_ne!(s.entry_hash(), base);
        let mut s = sample();
        s.body_sha256[0] ^= 1;
        assert_ne!(s.entry_hash(), base);
        let mut s = sample();
        s.log_name = "octo-orh";
        assert_ne!(s.entry_hash(), base);
    }
}

/// The worked example of docs/log-format.md, recomputed: the document and the code must agree.
#[cfg(test)]
mod worked_example {
    use super::*;
    use chrono::TimeZone;

    pub const BODY: &[u8] = br#"{"zen":"Keep it logically awesome.","hook_id":42}"#;

    pub fn first() -> EntryFields<'static> {
        EntryFields {
            log_name: "octo-org",
            seq: 0,
            prev_hash: GENESIS_PREV_HASH,
            received_at: Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
                + chrono::Duration::microseconds(123_456),
            kind: KIND_GITHUB_DELIVERY,
            delivery_id: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            event: "ping",
            hook_id: Some("42"),
            installation_target_type: Some("integration"),
            installation_target_id: Some("7"),
            signature: Some(
                "sha256=e53a79504eccf1ebf25f3ea01e1f19d7e91ae2bd1430af2714563a0fc94f7c83",
            ),
            body_sha256: body_hash(BODY),
        }
    }

    #[test]
    fn the_document_shows_what_the_code_computes() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/log-format.md"))
                .expect("docs/log-format.md exists");
        let doc: String = doc.split_whitespace().collect();
        let e0 = first();
        let h0 = e0.entry_hash();
        let mut e1 = first();
        e1.seq = 1;
        e1.prev_hash = h0;
        e1.delivery_id = "8e0a1f4c-cc78-11e3-8f7b-2c1a9b3d5e60";
        let h1 = e1.entry_hash();
        for (what, value) in [
            ("body SHA-256", hex::encode(body_hash(BODY))),
            ("entry 0 encoding", hex::encode(e0.encode())),
            ("entry 0 hash", hex::encode(h0)),
            ("entry 1 hash", hex::encode(h1)),
        ] {
            println!("{what}: {value}");
            assert!(
                doc.contains(&value),
                "docs/log-format.md lacks the {what} {value}"
            );
        }
    }
}

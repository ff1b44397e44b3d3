//! Reads a delivery's JSON for the projector, leaving out the members it never looks at.
//!
//! Most of a GitHub payload is API links: every repository, user and pull request carries
//! dozens of `*_url` members (and `_links`), about half of a typical body. Building a
//! `serde_json::Value` allocates a string and a map node for each; skipping them while parsing
//! roughly halves the projector's parsing work. The body still has to be valid JSON as a
//! whole: skipped members are checked, just not kept. `html_url`, the one link verdict shows,
//! is kept.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `body` as JSON without the members [`is_skipped`] names.
pub fn parse(body: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<Pruned>(body).map(|p| p.0)
}

/// Whether the projector never reads members called `key`.
pub fn is_skipped(key: &str) -> bool {
    key == "_links" || (key.ends_with("_url") && key != "html_url")
}

struct Pruned(Value);

impl<'de> Deserialize<'de> for Pruned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PrunedVisitor).map(Pruned)
    }
}

/// A member name, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

struct PrunedVisitor;

impl<'de> Visitor<'de> for PrunedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Pruned::deserialize(d).map(|p| p.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Pruned(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            if is_skipped(&key) {
                map.next_value::<IgnoredAny>()?;
            } else {
                let Pruned(value) = map.next_value()?;
                members.insert(key.into_owned(), value);
            }
        }
        Ok(Value::Object(members))
    }
}

/// `value` with the members [`parse`] leaves out removed, at every depth.
pub fn prune(value: &Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .iter()
                .filter(|(k, _)| !is_skipped(k))
                .map(|(k, v)| (k.clone(), prune(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(prune).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_but_api_links_and_still_requires_valid_json() {
        let body = br#"{"url": "u", "html_url": "h", "comments_url": "c", "_links": {"self": 1},
            "user": {"login": "octocat", "avatar_url": "a", "n": [1, -2, 3.5, null, true]},
            "title": "a \"quoted\" \u00e9 title", "k\u0065y_url": "escaped name"}"#;
        let pruned = parse(body).unwrap();
        assert_eq!(
            pruned,
            serde_json::json!({"url": "u", "html_url": "h",
                "user": {"login": "octocat", "n": [1, -2, 3.5, null, true]},
                "title": "a \"quoted\" é title"})
        );
        let full: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(prune(&full), pruned);
        assert!(
            parse(br#"{"a_url": [1, }"#).is_err(),
            "a skipped member must be valid too"
        );
        assert!(parse(br#"{"a": 1"#).is_err());
    }
}

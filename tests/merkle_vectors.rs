//! The RFC 6962 inclusion and consistency proof test vectors of transparency-dev/merkle
//! (tests/fixtures/merkle, Apache-2.0): every vector, including each one that must fail.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;
use verdict::log::merkle::{verify_consistency, verify_inclusion};

fn vectors(kind: &str) -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/merkle")
        .join(kind);
    let mut out = Vec::new();
    for group in std::fs::read_dir(&dir).unwrap() {
        for file in std::fs::read_dir(group.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            out.push((path, v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn b64(v: &Value) -> Vec<u8> {
    match v.as_str() {
        Some(s) => base64::engine::general_purpose::STANDARD.decode(s).unwrap(),
        None => Vec::new(),
    }
}

fn proof(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .map(|a| a.iter().map(b64).collect())
        .unwrap_or_default()
}

#[test]
fn every_inclusion_vector() {
    let all = vectors("inclusion");
    assert!(all.len() >= 40, "found only {} vectors", all.len());
    let mut failing = 0;
    for (path, v) in &all {
        let result = verify_inclusion(
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
            &b64(&v["leafHash"]),
            &proof(&v["proof"]),
            &b64(&v["root"]),
        );
        let want_err = v["wantErr"].as_bool().unwrap();
        failing += want_err as usize;
        assert_eq!(result.is_err(), want_err, "{}: {result:?}", path.display());
    }
    assert!(failing > all.len() / 2, "the wantErr cases are exercised");
}

#[test]
fn every_consistency_vector() {
    let all = vectors("consistency");
    assert!(all.len() >= 30, "found only {} vectors", all.len());
    for (path, v) in &all {
        let result = verify_consistency(
            v["size1"].as_u64().unwrap(),
            v["size2"].as_u64().unwrap(),
            &proof(&v["proof"]),
            &b64(&v["root1"]),
            &b64(&v["root2"]),
        );
        let want_err = v["wantErr"].as_bool().unwrap();
        assert_eq!(result.is_err(), want_err, "{}: {result:?}", path.display());
    }
}

//! RFC 6962 / RFC 9162 Merkle tree hashing, proof shapes and proof verification, with no
//! storage: the server builds proofs from stored subtree hashes with [`inclusion_plan`] and
//! [`consistency_plan`], and anyone verifies them offline with [`verify_inclusion`] and
//! [`verify_consistency`]. The leaf input of verdict's trees is an entry's 32-byte entry hash.

use sha2::{Digest, Sha256};

use super::entry::Hash;

/// MTH of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// RFC 6962 leaf hash: SHA-256(0x00 || leaf input).
pub fn leaf_hash(leaf_input: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(leaf_input)
        .finalize()
        .into()
}

/// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// A perfect, aligned subtree: leaves `[index << level, (index + 1) << level)`.
/// verdict stores one hash per such subtree, so any proof is a handful of lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

/// A leaf range `[start, end)` whose MTH a proof needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    /// The stored perfect subtrees whose hashes, combined right to left, give this range's
    /// MTH (RFC 6962 splits at the largest power of two below the size).
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut out = Vec::new();
        let (mut start, end) = (self.start, self.end);
        while start < end {
            // Largest aligned perfect subtree starting at `start` that fits.
            let mut level = if start == 0 {
                63
            } else {
                start.trailing_zeros()
            };
            while level > 0 && (1u64 << level) > end - start {
                level -= 1;
            }
            out.push(NodeId {
                level: level as u8,
                index: start >> level,
            });
            start += 1u64 << level;
        }
        out
    }

    /// This range's MTH from its nodes' hashes (in [`Range::nodes`] order).
    pub fn hash_from(nodes: &[Hash]) -> Hash {
        let mut iter = nodes.iter().rev();
        let mut acc = *iter.next().expect("a non-empty range has nodes");
        for left in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

fn largest_power_of_two_below(n: u64) -> u64 {
    debug_assert!(n > 1);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The ranges whose MTHs form the inclusion proof of leaf `index` in a tree of `size`
/// leaves, in proof order (the leaf's sibling first). RFC 6962 section 2.1.1.
pub fn inclusion_plan(index: u64, size: u64) -> Vec<Range> {
    assert!(index < size, "index {index} is outside a tree of {size}");
    fn path(m: u64, start: u64, n: u64, out: &mut Vec<Range>) {
        if n <= 1 {
            return;
        }
        let k = largest_power_of_two_below(n);
        if m < k {
            path(m, start, k, out);
            out.push(Range {
                start: start + k,
                end: start + n,
            });
        } else {
            path(m - k, start + k, n - k, out);
            out.push(Range {
                start,
                end: start + k,
            });
        }
    }
    let mut out = Vec::new();
    path(index, 0, size, &mut out);
    out
}

/// The ranges whose MTHs form the consistency proof from `old` to `new` leaves, in proof
/// order. RFC 6962 section 2.1.2.
pub fn consistency_plan(old: u64, new: u64) -> Vec<Range> {
    assert!(old <= new, "old size {old} exceeds new size {new}");
    fn sub(m: u64, start: u64, n: u64, whole: bool, out: &mut Vec<Range>) {
        if m == n {
            if !whole {
                out.push(Range {
                    start,
                    end: start + n,
                });
            }
            return;
        }
        let k = largest_power_of_two_below(n);
        if m <= k {
            sub(m, start, k, whole, out);
            out.push(Range {
                start: start + k,
                end: start + n,
            });
        } else {
            sub(m - k, start + k, n - k, false, out);
            out.push(Range {
                start,
                end: start + k,
            });
        }
    }
    let mut out = Vec::new();
    if old > 0 && old < new {
        sub(old, 0, new, true, &mut out);
    }
    out
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is not inside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the proof has {got} hashes; a proof for this position has {want}")]
    WrongLength { got: usize, want: usize },
    #[error("a hash is {0} bytes long, not 32")]
    BadHash(usize),
    #[error("the new size {new} is smaller than the old size {old}")]
    Shrunk { old: u64, new: u64 },
    #[error("the proof leads to root {computed}, not the expected {expected}")]
    RootMismatch { computed: String, expected: String },
}

fn as_hash(bytes: &[u8]) -> Result<Hash, ProofError> {
    bytes
        .try_into()
        .map_err(|_| ProofError::BadHash(bytes.len()))
}

fn matches(computed: &Hash, expected: &[u8]) -> Result<(), ProofError> {
    if computed[..] == *expected {
        Ok(())
    } else {
        Err(ProofError::RootMismatch {
            computed: hex::encode(computed),
            expected: hex::encode(expected),
        })
    }
}

/// Sizes of the two parts of an inclusion proof: hashes below the point where the leaf's
/// path leaves the tree's left perfect subtrees, and the border hashes above it.
fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    (inner, border)
}

fn chain_inner(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        seed = if (index >> i) & 1 == 0 {
            node_hash(&seed, h)
        } else {
            node_hash(h, &seed)
        };
    }
    seed
}

fn chain_inner_right(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        if (index >> i) & 1 == 1 {
            seed = node_hash(h, &seed);
        }
    }
    seed
}

fn chain_border_right(mut seed: Hash, proof: &[Hash]) -> Hash {
    for h in proof {
        seed = node_hash(h, &seed);
    }
    seed
}

/// The root an inclusion proof leads to (RFC 9162 section 2.1.3.2).
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &[u8],
    proof: &[Vec<u8>],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let leaf = as_hash(leaf)?;
    let proof: Vec<Hash> = proof.iter().map(|h| as_hash(h)).collect::<Result<_, _>>()?;
    let (inner, border) = decompose(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: inner + border,
        });
    }
    let res = chain_inner(leaf, &proof[..inner], index);
    Ok(chain_border_right(res, &proof[inner..]))
}

/// Checks that `leaf` (a leaf hash) is at `index` in the tree of `size` with `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &[u8],
    proof: &[Vec<u8>],
    root: &[u8],
) -> Result<(), ProofError> {
    let computed = root_from_inclusion(index, size, leaf, proof)?;
    matches(&computed, root)
}

/// Checks that the tree of `new` leaves with `new_root` extends the tree of `old` leaves
/// with `old_root` (RFC 9162 section 2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Vec<u8>],
    old_root: &[u8],
    new_root: &[u8],
) -> Result<(), ProofError> {
    if new < old {
        return Err(ProofError::Shrunk { old, new });
    }
    let proof: Vec<Hash> = proof.iter().map(|h| as_hash(h)).collect::<Result<_, _>>()?;
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: 0,
            });
        }
        return matches(&as_hash(old_root)?, new_root);
    }
    if old == 0 {
        // The empty tree is a prefix of every tree.
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: 0,
            });
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength { got: 0, want: 1 });
    }
    let (mut inner, border) = decompose(old - 1, new);
    let shift = old.trailing_zeros() as usize;
    inner -= shift;
    let (seed, start) = if old == 1u64 << shift {
        (as_hash(old_root)?, 0)
    } else {
        (proof[0], 1)
    };
    if proof.len() != start + inner + border {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: start + inner + border,
        });
    }
    let proof = &proof[start..];
    let mask = (old - 1) >> shift;
    let hash1 = chain_border_right(
        chain_inner_right(seed, &proof[..inner], mask),
        &proof[inner..],
    );
    matches(&hash1, old_root)?;
    let hash2 = chain_border_right(chain_inner(seed, &proof[..inner], mask), &proof[inner..]);
    matches(&hash2, new_root)
}

/// The root of a tree over `leaves` (leaf hashes), computed directly: for tests and for
/// verifying a whole exported log.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = largest_power_of_two_below(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// A tree's right edge: the perfect subtrees a tree of `size` leaves decomposes into, largest
/// first. Appending leaves needs only these, and the root is them folded right to left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// (node, hash), from the leftmost (largest) subtree.
    nodes: Vec<(NodeId, Hash)>,
}

impl Frontier {
    /// The node ids a frontier of `size` consists of.
    pub fn ids(size: u64) -> Vec<NodeId> {
        Range {
            start: 0,
            end: size,
        }
        .nodes()
        .into_iter()
        .filter(|_| size > 0)
        .collect()
    }

    /// A frontier from its stored node hashes (in [`Frontier::ids`] order).
    pub fn from_nodes(size: u64, hashes: Vec<Hash>) -> Frontier {
        let ids = Frontier::ids(size);
        assert_eq!(ids.len(), hashes.len(), "one hash per frontier node");
        Frontier {
            size,
            nodes: ids.into_iter().zip(hashes).collect(),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf; returns every node completed by it (the leaf itself first), which
    /// is what gets stored.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut node = (
            NodeId {
                level: 0,
                index: self.size,
            },
            leaf,
        );
        let mut completed = vec![node];
        while let Some((top, top_hash)) = self.nodes.last().copied() {
            if top.level != node.0.level {
                break;
            }
            self.nodes.pop();
            node = (
                NodeId {
                    level: top.level + 1,
                    index: top.index >> 1,
                },
                node_hash(&top_hash, &node.1),
            );
            completed.push(node);
        }
        self.nodes.push(node);
        self.size += 1;
        completed
    }

    /// The tree's root hash.
    pub fn root(&self) -> Hash {
        if self.nodes.is_empty() {
            return empty_root();
        }
        let hashes: Vec<Hash> = self.nodes.iter().map(|n| n.1).collect();
        Range::hash_from(&hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// A complete in-memory store of every perfect subtree, as the database keeps it.
    fn store(leaves: &[Hash]) -> std::collections::HashMap<NodeId, Hash> {
        let mut f = Frontier::default();
        leaves.iter().flat_map(|l| f.push(*l)).collect()
    }

    fn range_hash(store: &std::collections::HashMap<NodeId, Hash>, r: Range) -> Vec<u8> {
        let hashes: Vec<Hash> = r.nodes().iter().map(|id| store[id]).collect();
        Range::hash_from(&hashes).to_vec()
    }

    #[test]
    fn frontier_root_equals_the_recursive_definition() {
        let all = leaves(70);
        let mut f = Frontier::default();
        assert_eq!(f.root(), empty_root());
        for n in 1..=70 {
            f.push(all[n - 1]);
            assert_eq!(f.root(), root(&all[..n]), "size {n}");
            let s = store(&all[..n]);
            let again = Frontier::from_nodes(
                n as u64,
                Frontier::ids(n as u64).iter().map(|id| s[id]).collect(),
            );
            assert_eq!(again, f);
        }
    }

    #[test]
    fn planned_proofs_verify_for_every_position_and_size() {
        let all = leaves(40);
        let s = store(&all);
        for size in 1..=40u64 {
            let r = root(&all[..size as usize]);
            for index in 0..size {
                let proof: Vec<Vec<u8>> = inclusion_plan(index, size)
                    .into_iter()
                    .map(|range| range_hash(&s, range))
                    .collect();
                verify_inclusion(index, size, &all[index as usize], &proof, &r).unwrap();
                let wrong = (index + 1) % size;
                if wrong != index {
                    assert!(
                        verify_inclusion(wrong, size, &all[index as usize], &proof, &r).is_err()
                    );
                }
            }
            for old in 0..=size {
                let old_root = root(&all[..old as usize]);
                let proof: Vec<Vec<u8>> = consistency_plan(old, size)
                    .into_iter()
                    .map(|range| range_hash(&s, range))
                    .collect();
                verify_consistency(old, size, &proof, &old_root, &r)
                    .unwrap_or_else(|e| panic!("{old} -> {size}: {e}"));
                if old > 0 && old < size {
                    let other = root(&all[1..old as usize + 1]);
                    assert!(verify_consistency(old, size, &proof, &other, &r).is_err());
                }
            }
        }
    }

    #[test]
    fn the_documented_worked_example_holds() {
        let doc = include_str!("../../docs/log-format.md");
        let h0 = crate::log::entry::parse_hash(
            "4b58a236777b394329cb65e08d525a9a0f7aa9d2e5b8b961b6fcd9f3fa7a4a54",
        )
        .unwrap();
        let h1 = crate::log::entry::parse_hash(
            "7cacdea2a203cbebd088ef8c85256edb09900faf9f8d4b3c6b30ef74dba05de2",
        )
        .unwrap();
        let (l0, l1) = (leaf_hash(&h0), leaf_hash(&h1));
        for h in [l0, l1, root(&[l0, l1])] {
            assert!(
                doc.contains(&hex::encode(h)),
                "{} is not in the document",
                hex::encode(h)
            );
        }
    }

    #[test]
    fn proofs_take_logarithmically_many_stored_nodes() {
        let size = 1_000_000u64;
        for index in [0, 1, 499_999, 999_999] {
            let nodes: usize = inclusion_plan(index, size)
                .iter()
                .map(|r| r.nodes().len())
                .sum();
            assert!(nodes <= 2 * 20, "{index}: {nodes} nodes");
        }
    }
}
#[cfg(test)]
mod resume_tests {
    use super::*;
    #[test]
    fn resuming_emits_only_new_nodes() {
        for split in 1..40u64 {
            let leaves: Vec<Hash> = (0..40u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let mut f = Frontier::default();
            let mut seen = std::collections::HashMap::new();
            for l in &leaves[..split as usize] {
                for (id, h) in f.push(*l) {
                    assert!(seen.insert(id, h).is_none());
                }
            }
            let ids = Frontier::ids(split);
            let mut g = Frontier::from_nodes(split, ids.iter().map(|id| seen[id]).collect());
            for l in &leaves[split as usize..] {
                for (id, h) in g.push(*l) {
                    assert!(seen.insert(id, h).is_none(), "split {split}: {id:?} again");
                }
            }
        }
    }
}

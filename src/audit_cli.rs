//! The auditor's commands: keygen, export, verify-bundle, verify-proof and monitor.
//! Everything but export works without verdict's database.

use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use verdict::db;
use verdict::log::bundle::{self, AuditError};
use verdict::log::checkpoint::{self, CheckpointSigner};
use verdict::log::monitor;

use crate::{DbArgs, open_db, stop_cluster};

#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the signing key (created readable by its owner only; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Key name: the schema-less URL of this verdict (e.g. verdict.example.com). Each log's
    /// checkpoints are signed under `<name>/<account>`.
    #[arg(long, default_value = checkpoint::DEFAULT_KEY_NAME)]
    name: String,
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let signer = CheckpointSigner::generate(&args.name)?;
    checkpoint::write_key_file(&args.out, &signer)?;
    println!(
        "wrote a new checkpoint signing key to {}",
        args.out.display()
    );
    println!("start serve with --signing-key {}", args.out.display());
    println!(
        "each log's verifier key is served at /api/logs/ACCOUNT/key; for example:\n  {}",
        signer.verifier_key("ACCOUNT")
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The account whose log to export.
    #[arg(long)]
    log: String,
    /// Bundle file to write (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The key serve signs with, to include its verifier key (default: the one in --data-dir).
    #[arg(long, env = "VERDICT_SIGNING_KEY_FILE")]
    signing_key: Option<PathBuf>,
}

pub async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let key_path = args
        .signing_key
        .clone()
        .unwrap_or_else(|| args.db.data_dir.join("checkpoint-signing.key"));
    let signer = checkpoint::read_key_file(&key_path).context(
        "export includes the log's verifier key: pass the key serve uses with --signing-key",
    )?;
    let database = open_db(&args.db, db::Migrations::LeaveAlone).await?;
    let pool = db::app_pool(&database.url, 2).await?;
    let verifier_key = signer.verifier_key(&args.log);
    let summary = match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            bundle::export(&pool, &args.log, verifier_key, &mut out).await?
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            bundle::export(&pool, &args.log, verifier_key, &mut out).await?
        }
    };
    eprintln!(
        "exported {} entries of log {} (signed checkpoint covers {}){}",
        summary.entries,
        args.log,
        summary.checkpoint_size,
        args.out
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    stop_cluster(&database);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct VerifyBundleArgs {
    /// A bundle written by `verdict export`.
    file: PathBuf,
    /// The log's verifier key you trust (`<origin>+<id>+<base64>`), saved earlier from
    /// /api/logs/ACCOUNT/key. Rotations recorded in the log are followed from it.
    #[arg(long)]
    key: Option<String>,
    /// Use the key inside the bundle instead: proves the bundle is intact, not who signed it
    /// (anyone can re-sign a bundle with a key of their own).
    #[arg(long, conflicts_with = "key")]
    trust_bundle_key: bool,
}

fn failed(err: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    println!("FAILED {err}");
    Ok(ExitCode::FAILURE)
}

pub fn verify_bundle(args: VerifyBundleArgs) -> anyhow::Result<ExitCode> {
    if args.key.is_none() && !args.trust_bundle_key {
        return failed(
            "no key to check the signature with: pass the log's verifier key you trust with \
             --key (saved earlier from /api/logs/ACCOUNT/key), or --trust-bundle-key to check \
             the bundle against the key inside it, which proves it intact but not who signed it",
        );
    }
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template("verifying [{bar:40}] {pos}/{len} entries ({eta})")
                .expect("valid template"),
        )
    } else {
        ProgressBar::hidden()
    };
    let result = bundle::verify_bundle(BufReader::new(file), args.key.as_deref(), |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    match result {
        Ok(r) => {
            println!(
                "ok log {} size {} head {}:{}",
                r.account,
                r.entries,
                r.entries,
                r.head_hash.map(hex::encode).unwrap_or_default()
            );
            println!(
                "ok checkpoint {} size {} root {} signature verified; Merkle root recomputed from the entries",
                r.checkpoint.origin,
                r.checkpoint.size,
                hex::encode(r.checkpoint.root)
            );
            if r.redacted > 0 {
                println!(
                    "ok {} entr{} redacted (body hash kept), each accounted for by its redaction entry",
                    r.redacted,
                    if r.redacted == 1 { "y" } else { "ies" }
                );
            }
            if r.key_from_bundle {
                println!(
                    "note: checked against the key inside the bundle; pass --key with the key you trust to also prove who signed"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(AuditError::Io(e)) => Err(e.into()),
        Err(e) => failed(e),
    }
}

#[derive(Args)]
pub struct VerifyProofArgs {
    /// A record's `.tlog-proof` file (the record page's download).
    file: PathBuf,
    /// The log's verifier key you trust.
    #[arg(long)]
    key: String,
    /// Also check that this file is the delivery body the record logged.
    #[arg(long)]
    body: Option<PathBuf>,
    /// The log's key rotations (from /api/logs/ACCOUNT/key-rotations), when the checkpoint
    /// is signed by a key --key handed over to: each handover must be signed by both keys.
    #[arg(long)]
    rotations: Option<PathBuf>,
}

pub fn verify_proof(args: VerifyProofArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let body = args
        .body
        .as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    let rotations = match &args.rotations {
        Some(path) => verdict::log::keys::parse_concatenated(
            &std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("{} holds no valid key rotations", path.display()))?,
        None => Vec::new(),
    };
    match bundle::verify_proof_file_following(&text, &args.key, &rotations, body.as_deref()) {
        Ok(r) => {
            let e = &r.entry;
            println!(
                "ok entry {} of log {} is included in checkpoint {} size {} root {}",
                e.seq,
                e.log_name,
                r.checkpoint.origin,
                r.checkpoint.size,
                hex::encode(r.checkpoint.root)
            );
            println!(
                "   {} delivery {} event {} received {}\n   entry hash {}\n   body sha256 {}{}",
                e.kind,
                e.delivery_id,
                e.event,
                e.received_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                hex::encode(r.entry_hash),
                hex::encode(e.body_sha256),
                if body.is_some() {
                    " (matches the given body)"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => failed(e),
    }
}

#[derive(Args)]
pub struct MonitorArgs {
    /// A checkpoint saved earlier (from /api/logs/ACCOUNT/checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The verdict server to check.
    #[arg(long, env = "VERDICT_SERVER", default_value = "http://127.0.0.1:3000")]
    server: String,
    /// The log's verifier key you trust (default: the server's, which trusts the server).
    #[arg(long)]
    key: Option<String>,
    /// After a successful check, replace the saved checkpoint with the server's current one.
    #[arg(long)]
    update: bool,
    /// An operator token (VERDICT_ADMIN_TOKEN), sent as a bearer token: needed for logs whose
    /// repositories are all private.
    #[arg(long, env = "VERDICT_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

pub async fn monitor(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    let saved = std::fs::read_to_string(&args.checkpoint)
        .with_context(|| format!("cannot read {}", args.checkpoint.display()))?;
    match monitor::observe(
        &args.server,
        &saved,
        args.key.as_deref(),
        args.token.as_deref(),
    )
    .await
    {
        Ok((o, key_from_server)) => {
            println!(
                "ok log {}: the current tree (size {}, root {}) extends the saved one (size {}, root {}), and its newest entry is the one signed",
                o.account,
                o.current.size,
                hex::encode(o.current.root),
                o.saved.size,
                hex::encode(o.saved.root)
            );
            if let Some(key) = &o.rotated_to {
                println!(
                    "note: the log's signing key was rotated (the handover is signed by both keys): trust {key} from now on"
                );
            }
            if key_from_server {
                println!(
                    "note: used the key the server publishes; pass --key to pin the key you trust"
                );
            }
            if args.update {
                std::fs::write(&args.checkpoint, &o.current_note)
                    .with_context(|| format!("cannot update {}", args.checkpoint.display()))?;
                println!(
                    "saved the current checkpoint to {}",
                    args.checkpoint.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (monitor::MonitorError::Fetch { .. } | monitor::MonitorError::Status { .. })) => {
            Err(e.into())
        }
        Err(e) => failed(e),
    }
}

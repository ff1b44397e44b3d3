//! The container files (issue 16), checked without a container engine: no engine can run
//! here (podman installs, but cannot pull base images without registry access, and its
//! runtime may not set resource limits in this sandbox), so these check what the files
//! promise instead: what the build context leaves out, a non-root runtime, a health check
//! that is verdict's own `/readyz`, restricted database logins, volumes for the key, and an
//! env file whose every variable is one verdict reads.

use std::path::Path;

fn file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Variables of an env file (`NAME=value` lines).
fn variables(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| l.split('=').next().unwrap().to_string())
        .collect()
}

#[test]
fn the_build_context_leaves_out_build_output_cluster_data_keys_and_history() {
    let ignored: Vec<String> = file(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    for must in [
        "target/",
        ".verdict/",
        ".git/",
        "*.key",
        "*.pem",
        ".env",
        "verdict.env",
    ] {
        assert!(ignored.iter().any(|i| i == must), "{must} in .dockerignore");
    }
}

#[test]
fn the_image_runs_as_a_non_root_user_with_a_data_volume_and_its_own_health_check() {
    let dockerfile = file("Dockerfile");
    let runtime = dockerfile
        .rsplit("\nFROM ")
        .next()
        .expect("a multi-stage build");
    assert!(
        dockerfile.matches("\nFROM ").count() + 1 >= 2,
        "multi-stage"
    );
    assert!(runtime.contains("\nUSER verdict"), "{runtime}");
    assert!(runtime.contains("VOLUME [\"/var/lib/verdict\"]"));
    assert!(runtime.contains("VERDICT_DATA_DIR=/var/lib/verdict"));
    assert!(runtime.contains("CMD [\"verdict\", \"healthcheck\"]"));
    assert!(
        !dockerfile.contains("COPY . ."),
        "only what the build needs"
    );
}

#[test]
fn compose_checks_health_with_verdict_and_serves_as_the_restricted_login() {
    let compose = file("docker-compose.yml");
    assert!(
        !compose.contains("/dev/tcp") && !compose.contains("CMD-SHELL"),
        "no shell tricks: dash has no /dev/tcp"
    );
    assert!(compose.contains("test: [\"CMD\", \"verdict\", \"healthcheck\"]"));
    let serve = &compose[compose.find("\n  verdict:").expect("a verdict service")..];
    let serve = &serve[..serve.find("\nvolumes:").unwrap_or(serve.len())];
    assert!(serve.contains("VERDICT_APP_DATABASE_URL: postgres://verdict_runtime:"));
    assert!(
        !serve.contains("POSTGRES_PASSWORD"),
        "the server never holds the owner's password"
    );
    assert!(serve.contains("DATABASE_URL: \"\""));
    assert!(
        serve.contains("verdict-data:/var/lib/verdict"),
        "the key survives re-creation"
    );
    assert!(serve.contains("env_file: verdict.env"));
    let migrate =
        &compose[compose.find("\n  migrate:").unwrap()..compose.find("\n  verdict:").unwrap()];
    assert!(migrate.contains("command: [\"migrate\"]"));
    assert!(migrate.contains("DATABASE_URL: postgres://verdict:${POSTGRES_PASSWORD}@db"));
    // `verdict healthcheck` is a real subcommand.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["healthcheck", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn every_variable_of_the_env_files_is_one_verdict_reads() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    // Help text wraps where it likes: compare with the whitespace collapsed.
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let example = file("verdict.env.example");
    let vars = variables(&example);
    assert!(vars.len() >= 20, "{vars:?}");
    for v in &vars {
        // Read by the process itself rather than by an option.
        if ["VERDICT_LOG", "VERDICT_LOG_FORMAT"].contains(&v.as_str()) {
            continue;
        }
        assert!(
            help.contains(&format!("env: {v}=")) || help.contains(&format!("env: {v}]")),
            "{v} is not an option of serve: {help}"
        );
    }
    for must in [
        "GITHUB_WEBHOOK_SECRET",
        "VERDICT_PUBLIC_URL",
        "VERDICT_METRICS_LISTEN",
    ] {
        assert!(vars.iter().any(|v| v == must), "{must} documented");
    }
    // The database passwords live apart, for compose to hand out.
    let db = variables(&file(".env.example"));
    assert_eq!(db, ["POSTGRES_PASSWORD", "VERDICT_APP_DATABASE_PASSWORD"]);
    assert!(!vars.iter().any(|v| v == "POSTGRES_PASSWORD"));
}

#[test]
fn the_grafana_dashboard_charts_only_metrics_verdict_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&file("deploy/grafana-dashboard.json")).expect("JSON");
    let source = file("src/ops/metrics.rs");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("verdict_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                // Registered names, with the suffixes the exposition adds.
                let base = n
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_count")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_total");
                assert!(source.contains(&format!("\"{base}\"")), "{n} in {expr}");
            }
        }
    }
}

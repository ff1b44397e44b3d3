//! Encrypted connections to PostgreSQL (issue 16): a private cluster that accepts TLS only,
//! with a certificate from a throwaway CA; `sslmode=require` and `verify-full` with
//! `sslrootcert=` connect, a wrong CA is refused with a clear message.

mod common;

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test makes certificates with the openssl command ({e}): apt-get install openssl")
        });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate it signed for 127.0.0.1 and localhost, and an unrelated CA.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=verdict test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-days",
            "2",
            "-subj",
            "/CN=someone else",
        ],
    );
}

/// `verdict migrate` against `url`: (succeeded, output).
fn migrate(url: &str, data: &Path) -> (bool, String) {
    common::verdict_cli(
        &["migrate", "--data-dir", data.to_str().unwrap()],
        &[("DATABASE_URL", url)],
    )
}

#[test]
fn postgres_over_tls_with_require_and_verify_full_and_a_wrong_ca_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Initialise a private cluster, then stop it to turn TLS on.
    let cluster = verdict::db::local_cluster::LocalCluster::start(&root.join("pg"))
        .expect("a private PostgreSQL cluster (install Debian's postgresql package)");
    cluster.stop().unwrap();
    let certs = root.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    certificates(&certs);
    let data = root.join("pg/data");
    for f in ["server.crt", "server.key"] {
        std::fs::copy(certs.join(f), data.join(f)).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
    conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    std::fs::write(data.join("postgresql.conf"), conf).unwrap();
    // TCP connections only with TLS.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    // The server runs as postgres when the test runs as root: it must own what it reads.
    if Command::new("id").arg("-u").output().unwrap().stdout == b"0\n" {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&data)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let cluster = verdict::db::local_cluster::LocalCluster::start(&root.join("pg")).unwrap();
    let base = cluster.url("postgres");
    let state = root.join("verdict");

    // Without TLS the server refuses: TLS below is really in use.
    let (ok, out) = migrate(&format!("{base}?sslmode=disable"), &state);
    assert!(!ok, "{out}");
    assert!(
        out.contains("no encryption") || out.contains("pg_hba.conf"),
        "{out}"
    );

    let (ok, out) = migrate(&format!("{base}?sslmode=require"), &state);
    assert!(ok, "sslmode=require: {out}");
    // The server's own login keeps the TLS settings.
    let app_url = out
        .lines()
        .find_map(|l| l.strip_prefix("VERDICT_APP_DATABASE_URL="))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(app_url.contains("sslmode=require"), "{app_url}");

    let ca = certs.join("ca.pem");
    let (ok, out) = migrate(
        &format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display()),
        &state,
    );
    assert!(ok, "verify-full with the right CA: {out}");

    let other = certs.join("other.pem");
    let (ok, out) = migrate(
        &format!("{base}?sslmode=verify-full&sslrootcert={}", other.display()),
        &state,
    );
    assert!(!ok, "a certificate from another CA must be refused: {out}");
    assert!(
        out.to_lowercase().contains("certificate"),
        "the error says it is the certificate: {out}"
    );
    cluster.stop().unwrap();
}

/// TLS over loopback protects nothing and, with sqlx 0.9, costs ~40 ms a round trip: a
/// server on this machine is reached without it unless the URL asks (`sslmode=`).
#[tokio::test]
async fn a_server_on_this_machine_is_reached_without_tls_unless_the_url_asks() {
    let db = common::TestDb::new().await;
    let encrypted = async |url: &str| {
        let pool = verdict::db::app_pool(url, 1).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        // The pool's role may not read its own session's row; the session's user may.
        sqlx::query("RESET ROLE").execute(&mut *conn).await.unwrap();
        let ssl: Option<bool> =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        let offered: String = sqlx::query_scalar("SHOW ssl")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        (ssl, offered == "on")
    };
    let (ssl, offered) = encrypted(&db.url).await;
    assert_eq!(ssl, Some(false));
    if offered {
        let sep = if db.url.contains('?') { '&' } else { '?' };
        let (ssl, _) = encrypted(&format!("{}{sep}sslmode=require", db.url)).await;
        assert_eq!(ssl, Some(true), "sslmode=require is honoured");
    }
}

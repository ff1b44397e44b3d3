//! A private PostgreSQL cluster started from the machine's installed server binaries, so
//! `serve`, `demo` and the tests work without any database set up by hand.
//!
//! PostgreSQL refuses to run as root; from a root shell the cluster runs as the `postgres`
//! user (Debian's server package creates it) through `runuser`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use fs2::FileExt;

/// Why no private cluster could be started; the message says what to install or set.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no DATABASE_URL and no PostgreSQL server binaries found (looked for initdb in \
         $VERDICT_PG_BIN, /usr/lib/postgresql/*/bin and PATH): install the PostgreSQL server \
         (Debian: apt-get install postgresql) or set DATABASE_URL"
    )]
    NoBinaries,
    #[error(
        "running as root needs the `postgres` user and `runuser` to start a private cluster: install Debian's postgresql package or set DATABASE_URL"
    )]
    NoServerUser,
    #[error("{what} failed: {detail}. See {log} or set DATABASE_URL")]
    Command {
        what: String,
        detail: String,
        log: String,
    },
    #[error("private cluster directory {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running private cluster listening on 127.0.0.1 (trust auth, superuser `postgres`).
#[derive(Debug, Clone)]
pub struct LocalCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
    started_here: bool,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl LocalCluster {
    /// Starts the cluster in `dir` (initialising it on first use), or attaches to it if it is
    /// already running. Safe to call from several processes at once.
    pub fn start(dir: &Path) -> Result<Self, ClusterError> {
        let bin = find_bin_dir().ok_or(ClusterError::NoBinaries)?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let dir = dir.canonicalize().map_err(io_err(dir))?;
        let lock_path = dir.join("verdict.lock");
        let lock = std::fs::File::create(&lock_path).map_err(io_err(&lock_path))?;
        lock.lock_exclusive().map_err(io_err(&lock_path))?;

        let run_as = if is_root() {
            if !user_exists("postgres") {
                return Err(ClusterError::NoServerUser);
            }
            Some("postgres".to_string())
        } else {
            None
        };
        let mut cluster = LocalCluster {
            port: 0,
            dir,
            bin,
            run_as,
            started_here: false,
        };
        let result = cluster.init_and_start();
        let _ = FileExt::unlock(&lock);
        result.map(|()| cluster)
    }

    /// URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Whether this process started the server (rather than finding it running).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Stops the server (fast shutdown: committed data is safe).
    pub fn stop(&self) -> Result<(), ClusterError> {
        let data = self.data_dir();
        self.run(
            "pg_ctl stop",
            self.cmd("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-m", "fast", "-w", "stop"]),
        )
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn init_and_start(&mut self) -> Result<(), ClusterError> {
        let data = self.data_dir();
        if let Some(user) = &self.run_as {
            chown(&self.dir, user)?;
        }
        if !data.join("PG_VERSION").exists() {
            self.run(
                "initdb",
                self.cmd("initdb").arg("-D").arg(&data).args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ]),
            )?;
        }
        let port_file = self.dir.join("port");
        self.port = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let running = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success());
        if running && self.port != 0 {
            return Ok(());
        }
        self.port = free_port().map_err(io_err(&self.dir))?;
        std::fs::write(&port_file, self.port.to_string()).map_err(io_err(&port_file))?;
        let socket_dir = self.dir.clone();
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200",
            self.port,
            socket_dir.display()
        );
        self.run(
            "pg_ctl start",
            self.cmd("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(self.log_path())
                .args(["-o", &opts, "-w", "-t", "60", "start"]),
        )?;
        self.started_here = true;
        Ok(())
    }

    fn cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run(&self, what: &str, cmd: &mut Command) -> Result<(), ClusterError> {
        let log = self.log_path().display().to_string();
        let out = cmd.output().map_err(|e| ClusterError::Command {
            what: what.to_string(),
            detail: e.to_string(),
            log: log.clone(),
        })?;
        if out.status.success() {
            return Ok(());
        }
        let detail = String::from_utf8_lossy(&out.stderr)
            .lines()
            .chain(String::from_utf8_lossy(&out.stdout).lines())
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .to_string();
        Err(ClusterError::Command {
            what: what.to_string(),
            detail,
            log,
        })
    }
}

/// The newest installed server's bin directory.
fn find_bin_dir() -> Option<PathBuf> {
    let has_initdb = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("VERDICT_PG_BIN").map(PathBuf::from) {
        return has_initdb(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_initdb(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| has_initdb(d))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn user_exists(user: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(user)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn chown(dir: &Path, user: &str) -> Result<(), ClusterError> {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(dir)
        .status()
        .map_err(io_err(dir))?;
    if !status.success() {
        return Err(ClusterError::Command {
            what: format!("chown {}", dir.display()),
            detail: status.to_string(),
            log: dir.display().to_string(),
        });
    }
    Ok(())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

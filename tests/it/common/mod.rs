//! Test harness: a throw-away database per test (MariaDB or SQLite) and the real app on an
//! ephemeral port.
#![allow(dead_code)] // each test binary uses a different subset

pub mod audio;
pub mod child;
pub mod freeswitch;

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use discador::app::{self, RunningApp};
use discador::config::Config;

pub const MYSQL_HOST: &str = "127.0.0.1";

/// The store backends a test can run on, chosen by the scheme of `DATABASE_URL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// MariaDB on `127.0.0.1:3306`, root without password.
    Mysql,
    /// An embedded SQLite file.
    Sqlite,
}

/// Turns one `async fn name(backend: Backend)` into two tests, `name::mysql` and `name::sqlite`,
/// so that a test body is written once and runs on both store backends.
///
/// - `on_both_backends!(name);` runs both on `#[tokio::test]` (current-thread runtime);
/// - `on_both_backends!(name, worker_threads = 2);` runs both on
///   `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.
///
/// ```ignore
/// async fn creates_a_campaign(backend: Backend) {
///     let t = TestApp::spawn(backend).await;
///     t.create("PRUEBA").await;
///     t.shutdown().await;
/// }
/// on_both_backends!(creates_a_campaign, worker_threads = 2);
/// ```
///
/// `cargo test sqlite` (or `mysql`) then selects one backend's variants.
macro_rules! on_both_backends {
    ($name:ident) => {
        $crate::common::on_both_backends!(@tests $name, #[tokio::test]);
    };
    ($name:ident, worker_threads = $n:literal) => {
        $crate::common::on_both_backends!(
            @tests $name,
            #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
        );
    };
    (@tests $name:ident, $($attr:tt)*) => {
        mod $name {
            $($attr)*
            async fn mysql() {
                super::$name($crate::common::Backend::Mysql).await
            }

            $($attr)*
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
        }
    };
}
pub(crate) use on_both_backends;

/// A throw-away database, removed when this value is dropped, also when the test panics:
/// - MySQL: a database `discador_t_<random>`, dropped with the `mysql` client (so that it works
///   outside any async runtime);
/// - SQLite: a directory `<temp>/discador_t_<random>/` holding `discador.db` (and its `-wal` and
///   `-shm` files), removed as a whole. The app creates the file itself.
pub struct TestDb {
    /// `discador_t_<random>`: the MySQL database, or the SQLite file's directory.
    pub name: String,
    backend: Backend,
    /// SQLite only: the directory holding the database file.
    dir: Option<PathBuf>,
}

impl TestDb {
    pub fn new(backend: Backend) -> Self {
        let name = format!("discador_t_{:016x}", rand::random::<u64>());
        let dir = match backend {
            Backend::Mysql => None,
            Backend::Sqlite => {
                let dir = std::path::absolute(std::env::temp_dir().join(&name))
                    .expect("an absolute temporary directory");
                std::fs::create_dir_all(&dir).expect("create the SQLite test directory");
                Some(dir)
            }
        };
        TestDb { name, backend, dir }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// SQLite only: the database file (absolute).
    pub fn path(&self) -> Option<PathBuf> {
        self.dir.as_deref().map(|d| d.join("discador.db"))
    }

    pub fn url(&self) -> String {
        match self.backend {
            Backend::Mysql => format!("mysql://root@{MYSQL_HOST}:3306/{}", self.name),
            Backend::Sqlite => format!("sqlite://{}", self.sqlite_path().display()),
        }
    }

    fn sqlite_path(&self) -> PathBuf {
        self.path().expect("a SQLite test database has a path")
    }

    /// Runs SQL in this database (for set-ups the API does not offer, e.g. a table to adopt, and
    /// for checking what was stored). Returns stdout trimmed: one row per line, columns separated
    /// by tabs, NULL as `NULL` (as `mysql -N -B` prints them, on both backends).
    pub fn sql(&self, sql: &str) -> String {
        let out = match self.backend {
            Backend::Mysql => Command::new("mysql")
                .args([
                    "-h", MYSQL_HOST, "-uroot", "-N", "-B", &self.name, "-e", sql,
                ])
                .output()
                .expect("mysql client runs"),
            Backend::Sqlite => Command::new("sqlite3")
                .args([
                    "-batch",
                    "-noheader",
                    "-separator",
                    "\t",
                    "-nullvalue",
                    "NULL",
                ])
                // The app holds the file open: wait for its write locks instead of failing.
                .args(["-cmd", ".timeout 5000"])
                .arg(self.sqlite_path())
                .arg(sql)
                .output()
                .expect("the sqlite3 client runs (the SQLite tests need the sqlite3 CLI)"),
        };
        assert!(
            out.status.success(),
            "{:?} failed on {sql:?}: {}",
            self.backend,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The user tables of this database, sorted: the service's own (`bases`, `llamadas`, `dnc`) and
    /// the campaigns' numbers tables, without diesel's bookkeeping or SQLite's internal tables.
    pub fn tables(&self) -> Vec<String> {
        let listed = match self.backend {
            Backend::Mysql => self.sql(
                "SELECT TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
            ),
            Backend::Sqlite => self.sql(
                "SELECT name FROM sqlite_master \
                 WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            ),
        };
        let mut tables: Vec<String> = listed
            .lines()
            .filter(|t| *t != "__diesel_schema_migrations")
            .map(str::to_owned)
            .collect();
        tables.sort();
        tables
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.dir {
            None => {
                let _ = Command::new("mysql")
                    .args([
                        "-h",
                        MYSQL_HOST,
                        "-uroot",
                        "-e",
                        &format!("DROP DATABASE IF EXISTS `{}`", self.name),
                    ])
                    .status();
            }
            Some(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: Config,
}

/// A TCP port nobody listens on right now, for an app or a simulator to bind a moment later.
/// Taken from 10000–19999, below the kernel's ephemeral range (32768–60999 here): a port the
/// kernel handed out (`bind 0`) is also what it hands to the next outgoing connection of any test,
/// which then holds it when the app binds (seen: `Address already in use` under `make test`).
/// The test switches use 21000–24199 and RTP from 30000 (`freeswitch.rs`).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // A process-dependent start, so that two test runs at once rarely try the same ports.
    let start = std::process::id() % 10_000;
    (0..10_000)
        .map(|_| {
            let step = NEXT.fetch_add(7, Ordering::Relaxed) % 10_000;
            10_000 + ((start + step) % 10_000) as u16
        })
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 10000-19999")
}

/// A configuration from flags (defaults for everything else), so new settings need no test change.
pub fn config(extra: &[&str]) -> Config {
    // Unless a test names its FreeSWITCH, point at a port nobody listens on: a simulator or a real
    // switch left running on 8021 must never receive a test's originates.
    let closed_port = free_port().to_string();
    let mut args = vec!["discador"];
    // The API's rate limit is per client address, and every test client is 127.0.0.1: tests that
    // poll or load in a loop get a roomy one (`metrics::rate_limit` sets its own low one).
    for (flag, default) in [
        ("--api-listen", "127.0.0.1:0"),
        ("--socket-listen", "127.0.0.1:0"),
        ("--freeswitch-port", closed_port.as_str()),
        ("--api-limite-rps", "1000"),
        ("--api-limite-rafaga", "1000"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend_from_slice(extra);
    Args::try_parse_from(args).expect("valid test flags").config
}

/// The running app and its database; HTTP helpers with an optional bearer token.
pub struct TestApp {
    pub app: RunningApp,
    pub db: TestDb,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

impl TestApp {
    /// The app on a fresh database of `backend`.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    /// The app on a fresh database of `backend`, with extra flags.
    pub async fn spawn_with(backend: Backend, extra: &[&str]) -> Self {
        Self::spawn_on(TestDb::new(backend), extra).await
    }

    /// The app on an existing database, e.g. the one a previous app left (see [`TestApp::shutdown`]).
    pub async fn spawn_on(db: TestDb, extra: &[&str]) -> Self {
        Self::spawn_clocked(db, extra, discador::clock::Clock::system()).await
    }

    /// The app on `db` with the calling rules on `clock` (a manual one sets "now" for the
    /// windows, the excluded dates and the attempt caps).
    pub async fn spawn_clocked(db: TestDb, extra: &[&str], clock: discador::clock::Clock) -> Self {
        match Self::try_spawn_clocked(db, extra, clock).await {
            Ok(t) => t,
            Err((_, e)) => panic!("app starts: {e:?}"),
        }
    }

    /// [`TestApp::spawn_clocked`] that gives the database back when the app does not start
    /// (e.g. a port another test took between `free_port` and the bind), so a caller can retry.
    pub async fn try_spawn_clocked(
        db: TestDb,
        extra: &[&str],
        clock: discador::clock::Clock,
    ) -> Result<Self, (TestDb, anyhow::Error)> {
        let url = db.url();
        let mut args = vec!["--database-url", url.as_str()];
        args.extend_from_slice(extra);
        let token = extra
            .windows(2)
            .find(|w| w[0] == "--api-token")
            .map(|w| w[1].to_owned());
        let mut cfg = config(&args);
        cfg.clock = clock;
        let app = match app::spawn(cfg).await {
            Ok(app) => app,
            Err(e) => return Err((db, e)),
        };
        let t = TestApp {
            app,
            db,
            http: reqwest::Client::new(),
            token,
        };
        t.wait_recovered(std::time::Duration::from_secs(10)).await;
        Ok(t)
    }

    /// Creates campaign `nombre`, open all day (UTC), with `layers` of settings (a later one wins
    /// over an earlier one), and loads `numbers` as CSV (none: nothing loaded), every one of them.
    pub async fn campaign(&self, nombre: &str, layers: &[&serde_json::Value], numbers: &[String]) {
        let mut body = serde_json::json!({
            "nombre": nombre, "hora_inicio": "00:00", "hora_fin": "00:00", "zona_horaria": "UTC",
            "timeout_llamada": 15, "intervalo_reintento": 0,
        });
        for layer in layers {
            for (k, v) in layer.as_object().expect("settings are an object") {
                body[k] = v.clone();
            }
        }
        let (s, b) = self.post_json("/campanas/", body).await;
        assert_eq!(s, 201, "{b}");
        if !numbers.is_empty() {
            self.load_numbers(nombre, numbers).await;
        }
    }

    /// Loads `numbers` into campaign `nombre` as CSV; every one of them must be inserted.
    pub async fn load_numbers(&self, nombre: &str, numbers: &[String]) {
        let csv = format!("telefono\n{}\n", numbers.join("\n"));
        let (s, b) = self
            .post_raw(
                &format!("/campana/{nombre}/numeros"),
                "text/csv",
                csv.into_bytes(),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["insertados"], numbers.len() as u64, "{b}");
    }

    /// Waits (at most `limit`) until start-up recovery is over (`/health` says `arranque: listo`),
    /// as a client would before starting campaigns: until then starting one is a 503. Returns
    /// whether it is over: a test whose FreeSWITCH or database is down on purpose goes on anyway.
    pub async fn wait_recovered(&self, limit: std::time::Duration) -> bool {
        let t0 = std::time::Instant::now();
        loop {
            let (_, h) = self.get("/health").await;
            if h["arranque"] != "recuperando" {
                return true;
            }
            if t0.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.app.api_addr, path)
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        Self::split(
            self.auth(self.http.get(self.url(path)))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        Self::split(
            self.auth(self.http.post(self.url(path)).json(&body))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn patch_json(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        Self::split(
            self.auth(self.http.patch(self.url(path)).json(&body))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let rb = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body);
        Self::split(self.auth(rb).send().await.expect("request")).await
    }

    pub async fn split(r: reqwest::Response) -> (u16, serde_json::Value) {
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    pub async fn create(&self, nombre: &str) -> serde_json::Value {
        let (s, body) = self
            .post_json("/campanas/", serde_json::json!({ "nombre": nombre }))
            .await;
        assert_eq!(s, 201, "{body}");
        body
    }

    /// Stops the app cleanly and hands back its database, to restart on it with
    /// [`TestApp::spawn_on`]; dropping the returned value removes the database.
    pub async fn shutdown(self) -> TestDb {
        self.app.shutdown().await.expect("clean shutdown");
        self.db
    }
}

/// A TCP proxy that a test can cut and restore, to simulate a peer (MariaDB, FreeSWITCH's event
/// socket) going away and coming back while the app runs.
pub struct TcpProxy {
    pub port: u16,
    target: (String, u16),
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The proxy in front of MariaDB.
pub type DbProxy = TcpProxy;

impl TcpProxy {
    /// A proxy to MariaDB on `127.0.0.1:3306`.
    pub async fn start_db() -> Self {
        Self::start((MYSQL_HOST, 3306)).await
    }

    /// A proxy to `target`.
    pub async fn start(target: (&str, u16)) -> Self {
        let mut p = TcpProxy {
            port: 0,
            target: (target.0.to_owned(), target.1),
            task: None,
        };
        p.listen().await;
        p
    }

    fn bind(port: u16) -> tokio::net::TcpListener {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_reuseaddr(true).expect("reuseaddr");
        sock.bind(([127, 0, 0, 1], port).into())
            .expect("bind proxy");
        sock.listen(64).expect("listen")
    }

    async fn listen(&mut self) {
        let listener = Self::bind(self.port);
        self.port = listener.local_addr().expect("addr").port();
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            // Dropping this set (when the task is aborted) aborts every forwarded connection.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut server) =
                        tokio::net::TcpStream::connect((target.0.as_str(), target.1)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every open connection: the peer is "down".
    pub async fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
            // The forwarded connections are aborted asynchronously; give them a moment to close.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }

    /// Listens again on the same port: the peer is "back".
    pub async fn restore(&mut self) {
        self.listen().await;
    }

    /// (MariaDB proxy) `prefer_socket=false`: otherwise mysql_async switches a loopback connection
    /// to MariaDB's Unix socket, bypassing the proxy.
    pub fn url(&self, db: &str) -> String {
        format!(
            "mysql://root@127.0.0.1:{}/{db}?prefer_socket=false",
            self.port
        )
    }
}

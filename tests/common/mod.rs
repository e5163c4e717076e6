//! Test harness: a throw-away MariaDB database per test and the real app on an ephemeral port.
#![allow(dead_code)] // each test binary uses a different subset

use std::process::Command;

use clap::Parser;
use discador::app::{self, RunningApp};
use discador::config::Config;

pub const MYSQL_HOST: &str = "127.0.0.1";

/// A database `discador_t_<random>` that is dropped when this value is dropped, also when the test
/// panics. Dropping uses the `mysql` client so that it works outside any async runtime.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new() -> Self {
        TestDb {
            name: format!("discador_t_{:016x}", rand::random::<u64>()),
        }
    }

    pub fn url(&self) -> String {
        format!("mysql://root@{MYSQL_HOST}:3306/{}", self.name)
    }

    /// Runs SQL in this database (for set-ups the API does not offer, e.g. a table to adopt).
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mysql")
            .args([
                "-h", MYSQL_HOST, "-uroot", "-N", "-B", &self.name, "-e", sql,
            ])
            .output()
            .expect("mysql client runs");
        assert!(
            out.status.success(),
            "mysql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
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
}

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: Config,
}

/// A configuration from flags (defaults for everything else), so new settings need no test change.
pub fn config(extra: &[&str]) -> Config {
    // Unless a test names its FreeSWITCH, point at a port nobody listens on: a simulator or a real
    // switch left running on 8021 must never receive a test's originates.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port().to_string())
        .expect("a free port");
    let mut args = vec!["discador"];
    for (flag, default) in [
        ("--api-listen", "127.0.0.1:0"),
        ("--socket-listen", "127.0.0.1:0"),
        ("--freeswitch-port", closed_port.as_str()),
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
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(extra: &[&str]) -> Self {
        let db = TestDb::new();
        let url = db.url();
        let mut args = vec!["--database-url", url.as_str()];
        args.extend_from_slice(extra);
        let token = extra
            .windows(2)
            .find(|w| w[0] == "--api-token")
            .map(|w| w[1].to_owned());
        let app = app::spawn(config(&args)).await.expect("app starts");
        TestApp {
            app,
            db,
            http: reqwest::Client::new(),
            token,
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

    pub async fn shutdown(self) {
        self.app.shutdown().await.expect("clean shutdown");
    }
}

/// A TCP proxy to MariaDB that a test can cut and restore, to simulate the database going away and
/// coming back while the app runs.
pub struct DbProxy {
    pub port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DbProxy {
    pub async fn start() -> Self {
        let mut p = DbProxy {
            port: 0,
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
        self.task = Some(tokio::spawn(async move {
            // Dropping this set (when the task is aborted) aborts every forwarded connection.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                conns.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect((MYSQL_HOST, 3306)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every open connection: the database is "down".
    pub async fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
            // The forwarded connections are aborted asynchronously; give them a moment to close.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }

    /// Listens again on the same port: the database is "back".
    pub async fn restore(&mut self) {
        self.listen().await;
    }

    /// `prefer_socket=false`: otherwise mysql_async switches a loopback connection to MariaDB's Unix
    /// socket, bypassing the proxy.
    pub fn url(&self, db: &str) -> String {
        format!(
            "mysql://root@127.0.0.1:{}/{db}?prefer_socket=false",
            self.port
        )
    }
}

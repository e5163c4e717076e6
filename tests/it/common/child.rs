//! The service as a real child process (`discador serve`), so that `kill -9` is the real thing:
//! started with the environment a test gives it, on a free API port, and killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::free_port;

/// A running `discador serve`; killed (and reaped) on drop.
pub struct ChildServer {
    pub child: Child,
    /// `http://127.0.0.1:<api port>`.
    pub base: String,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChildServer {
    /// Starts `discador serve` named `name` (for messages) with `env` (`API_LISTEN` is chosen
    /// here) and `stdout`; returns once `/health` says start-up recovery is over and, when
    /// `need_switch`, FreeSWITCH is connected. A process that exits meanwhile fails the test at
    /// once (its error is on stderr above).
    pub async fn start(
        name: &str,
        env: &[(&str, String)],
        stdout: Stdio,
        need_switch: bool,
    ) -> ChildServer {
        let api = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_discador"));
        cmd.arg("serve")
            .env("API_LISTEN", format!("127.0.0.1:{api}"))
            .stdout(stdout);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // Owned at once, so that a failed start-up below kills it too.
        let mut server = ChildServer {
            child: cmd.spawn().expect("the server binary starts"),
            base: format!("http://127.0.0.1:{api}"),
        };
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/health", server.base)).send().await {
                let b: Value = r.json().await.unwrap_or(Value::Null);
                if b["arranque"] == "listo" && (!need_switch || b["freeswitch"] == "conectado") {
                    return server;
                }
            }
            if let Some(status) = server.child.try_wait().expect("server status") {
                panic!("{name} exited during start-up ({status})");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{name} did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates campaign `nombre` open all day with `settings`, loads `numbers` and starts it,
    /// through this process's API.
    pub async fn start_campaign(&self, nombre: &str, settings: Value, numbers: &[String]) {
        let http = reqwest::Client::new();
        let mut body = json!({"nombre": nombre, "hora_inicio": "00:00", "hora_fin": "00:00"});
        for (k, v) in settings.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = http
            .post(format!("{}/campanas/", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let r = http
            .post(format!("{}/campana/{nombre}/numeros", self.base))
            .header("content-type", "text/csv")
            .body(format!("telefono\n{}\n", numbers.join("\n")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let r = http
            .post(format!("{}/discador/iniciar/", self.base))
            .json(&json!({ "nombre_campana": nombre }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
}

//! The store a benchmark runs against, chosen by `BENCH_BACKEND=mysql|sqlite|both` (default
//! `both`, MySQL first).
//!
//! Every run gets a fresh temporary directory (for its files: logs, and the SQLite database) and a
//! fresh, empty database: a new MariaDB database on 127.0.0.1:3306 (root, no password), or a new
//! SQLite file in that directory. The backend changes only the `DATABASE_URL` and the clean-up;
//! the benchmarks measure the same things the same way on both.

pub mod children;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Mysql,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Mysql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }

    /// The backends `BENCH_BACKEND` asks for, in the order they run.
    pub fn selected() -> Result<Vec<Backend>> {
        match std::env::var("BENCH_BACKEND").as_deref() {
            Err(_) | Ok("") | Ok("both") => Ok(vec![Backend::Mysql, Backend::Sqlite]),
            Ok("mysql") => Ok(vec![Backend::Mysql]),
            Ok("sqlite") => Ok(vec![Backend::Sqlite]),
            Ok(other) => bail!("BENCH_BACKEND={other}: expected mysql, sqlite or both"),
        }
    }
}

/// The backend this process measures, for a benchmark that runs each backend in a process of its
/// own (so that neither sees the other's memory): with several selected, this same binary is run
/// once per backend, with one selected, and `None` is returned (so is it when the binary runs
/// under `cargo test --all-targets`, without `--bench`: a debug-build measurement has no place in
/// the test suite).
#[allow(dead_code)] // the dialer bench runs both backends in one process
pub fn backend_of_this_process(bench: &str) -> Result<Option<Backend>> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{bench}: skipped (run it with `cargo bench --bench {bench}`)");
        return Ok(None);
    }
    match Backend::selected()?.as_slice() {
        [one] => Ok(Some(*one)),
        several => {
            let exe = std::env::current_exe()?;
            for backend in several {
                let status = Command::new(&exe)
                    .args(std::env::args_os().skip(1))
                    .env("BENCH_BACKEND", backend.name())
                    .status()?;
                if !status.success() {
                    bail!("{bench} on {}: {status}", backend.name());
                }
            }
            Ok(None)
        }
    }
}

/// One run's database and temporary directory; both are removed on drop.
pub struct BenchDb {
    pub backend: Backend,
    url: String,
    /// The MySQL database's name, also the temporary directory's name.
    name: String,
    dir: PathBuf,
}

impl BenchDb {
    /// A new, unique name; nothing is created in MariaDB here (the app creates the database on
    /// start-up, and creates the SQLite file the same way).
    pub fn create(backend: Backend) -> Result<BenchDb> {
        let name = format!("discador_bench_{:08x}", rand::random::<u32>());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let url = match backend {
            Backend::Mysql => format!("mysql://root@127.0.0.1:3306/{name}"),
            Backend::Sqlite => format!("sqlite://{}", dir.join("discador.db").display()),
        };
        Ok(BenchDb {
            backend,
            url,
            name,
            dir,
        })
    }

    /// The `DATABASE_URL` of this run.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The run's temporary directory, removed on drop.
    #[allow(dead_code)] // api_load keeps no files of its own
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if self.backend == Backend::Mysql {
            let _ = Command::new("mysql")
                .args([
                    "-h127.0.0.1",
                    "-uroot",
                    "-e",
                    &format!("DROP DATABASE IF EXISTS `{}`", self.name),
                ])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

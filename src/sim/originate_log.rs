//! The originate log: every `originate` the simulator receives (api or bgapi, admitted or not),
//! with a microsecond timestamp, kept in memory and optionally appended to a CSV file. Pacing is
//! measured here, at the switch, not at the dialer's API.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One originate as the simulator received it.
#[derive(Clone, Debug)]
pub struct OriginateRecord {
    /// Monotonic arrival time (for intervals).
    pub at: Instant,
    /// Wall-clock arrival time (for the CSV and for humans).
    pub wall: SystemTime,
    /// `origination_uuid` if given (empty when the command could not be parsed or had none).
    pub uuid: String,
    /// The number dialed (empty when the command could not be parsed).
    pub destination: String,
    /// The `{}` variables of the originate.
    pub vars: Vec<(String, String)>,
    /// `Job-UUID` of a bgapi originate.
    pub job_uuid: Option<String>,
}

impl OriginateRecord {
    /// Microseconds since the Unix epoch of `wall`.
    pub fn timestamp_us(&self) -> u128 {
        self.wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0)
    }
}

/// In-memory list plus optional CSV file.
#[derive(Debug)]
pub struct OriginateLog {
    records: Mutex<VecDeque<OriginateRecord>>,
    file: Option<Mutex<BufWriter<File>>>,
}

/// Why the log file cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open originate log {path}: {source}")]
pub struct OriginateLogError {
    path: String,
    #[source]
    source: std::io::Error,
}

impl OriginateLog {
    /// Opens (appends to) `path` if given; writes the CSV header when the file is new/empty.
    pub fn open(path: Option<&Path>) -> Result<OriginateLog, OriginateLogError> {
        let file = match path {
            None => None,
            Some(path) => {
                let err = |source| OriginateLogError {
                    path: path.display().to_string(),
                    source,
                };
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(err)?;
                let empty = f.metadata().map(|m| m.len() == 0).unwrap_or(false);
                let mut w = BufWriter::new(f);
                if empty {
                    w.write_all(b"timestamp_us,uuid,destination,job_uuid\n")
                        .and_then(|()| w.flush())
                        .map_err(err)?;
                }
                Some(Mutex::new(w))
            }
        };
        Ok(OriginateLog {
            records: Mutex::new(VecDeque::new()),
            file,
        })
    }

    /// Records one originate. A write error on the file is logged, never fatal: the in-memory
    /// record is what in-process tests read.
    pub fn push(&self, record: OriginateRecord) {
        if let Some(file) = &self.file {
            let mut w = file.lock().unwrap_or_else(|e| e.into_inner());
            let line = format!(
                "{},{},{},{}\n",
                record.timestamp_us(),
                csv_field(&record.uuid),
                csv_field(&record.destination),
                csv_field(record.job_uuid.as_deref().unwrap_or("")),
            );
            if let Err(e) = w.write_all(line.as_bytes()).and_then(|()| w.flush()) {
                tracing::warn!(error = %e, "originate log write failed");
            }
        }
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= super::state::MEMORY_CAP {
            records.pop_front();
        }
        records.push_back(record);
    }

    pub fn snapshot(&self) -> Vec<OriginateRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// Quotes a CSV field when it holds a separator, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_gets_header_and_quoted_fields() {
        let dir = std::env::temp_dir().join(format!("sim-olog-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("o.csv");
        let log = OriginateLog::open(Some(&path)).expect("open");
        log.push(OriginateRecord {
            at: Instant::now(),
            wall: SystemTime::now(),
            uuid: "u-1".into(),
            destination: "6,\"7".into(),
            vars: vec![],
            job_uuid: None,
        });
        let text = std::fs::read_to_string(&path).expect("read");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("timestamp_us,uuid,destination,job_uuid"));
        let row = lines.next().expect("row");
        assert!(row.ends_with(",u-1,\"6,\"\"7\","), "{row}");
        assert_eq!(log.snapshot().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

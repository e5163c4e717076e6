//! What the benches that run the binaries as child processes share: free ports, a child killed on
//! drop, and the sustained rate of a series of arrival times.
#![allow(dead_code)] // each bench compiles its own copy and uses part of it

use std::net::TcpListener;
use std::process::Child;

use anyhow::Result;

/// A port nobody listens on now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process, killed and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Seconds per event by least squares over (index, arrival time in µs): the sustained rate, not
/// swayed by the first and last arrivals alone.
pub fn slope_s(times_us: &[u64]) -> f64 {
    let n = times_us.len() as f64;
    let t0 = times_us[0];
    let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
    for (i, t) in times_us.iter().enumerate() {
        let (x, y) = (i as f64, (t - t0) as f64 / 1e6);
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    (n * sxy - sx * sy) / (n * sxx - sx * sx)
}

//! Events as the simulated core fires them, and their fan-out to every inbound connection.
//!
//! Events are the ESL layer's [`Event`] (ordered headers in FreeSWITCH's names and order, plus an
//! optional body), rendered to the wire by that layer's codec. Here they are only data: built
//! with the core's stamp, published once on a broadcast channel and filtered by each connection's
//! own subscription.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{Local, Utc};
use tokio::sync::broadcast;

use crate::esl::{Event, EventFormat};

/// Capacity of the event fan-out. A reader that falls this far behind loses events (reported as
/// a warning), as a slow ESL client of a real FreeSWITCH would.
pub const BUS_CAPACITY: usize = 65_536;

/// The core identity stamped on every event (`Core-UUID`, hostname, sequence numbers).
#[derive(Debug)]
pub struct Core {
    pub core_uuid: String,
    pub hostname: String,
    sequence: AtomicU64,
}

impl Core {
    pub fn new(hostname: &str) -> Core {
        Core {
            core_uuid: uuid::Uuid::new_v4().to_string(),
            hostname: hostname.to_owned(),
            sequence: AtomicU64::new(1),
        }
    }

    /// A new event with the headers FreeSWITCH's `switch_event_prep_for_delivery` adds first.
    /// `origin` is the (file, function) of FreeSWITCH's source that fires this event, reported in
    /// `Event-Calling-File` / `Event-Calling-Function` as the real switch does.
    pub fn event(&self, name: &str, origin: (&str, &str)) -> Event {
        let now = Utc::now();
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let mut ev = Event::new(name);
        ev.push("Core-UUID", &self.core_uuid);
        ev.push("FreeSWITCH-Hostname", &self.hostname);
        ev.push("FreeSWITCH-Switchname", &self.hostname);
        ev.push("FreeSWITCH-IPv4", "127.0.0.1");
        ev.push("FreeSWITCH-IPv6", "::1");
        ev.push(
            "Event-Date-Local",
            now.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
        );
        ev.push(
            "Event-Date-GMT",
            now.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        );
        ev.push("Event-Date-Timestamp", now.timestamp_micros().to_string());
        ev.push("Event-Calling-File", origin.0);
        ev.push("Event-Calling-Function", origin.1);
        ev.push("Event-Calling-Line-Number", "0");
        ev.push("Event-Sequence", seq.to_string());
        ev
    }
}

/// The fan-out: every connection holds a receiver.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl EventBus {
    pub fn new() -> EventBus {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        EventBus { tx }
    }

    /// Fires an event. Having no subscriber is normal (nobody listening), not an error.
    pub fn fire(&self, ev: Event) {
        let _ = self.tx.send(Arc::new(ev));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}

/// What one connection asked to receive: `event`, `nixevent`, `noevents`, `filter`.
#[derive(Clone, Debug, Default)]
pub struct Subscription {
    pub format: EventFormat,
    all: bool,
    names: HashSet<String>,
    /// CUSTOM subclasses asked for by name (`event plain CUSTOM avmd::beep`).
    subclasses: HashSet<String>,
    /// Event names removed with `nixevent` while `ALL` is on.
    nixed: HashSet<String>,
    /// `filter <header> <value>` pairs: when any exist, only events matching one are sent.
    filters: Vec<(String, String)>,
}

impl Subscription {
    /// Whether anything at all is subscribed (a connection with none gets no events).
    pub fn is_active(&self) -> bool {
        self.all || !self.names.is_empty() || !self.subclasses.is_empty()
    }

    /// Applies `event <format> <names…>`. Returns false for an unknown format.
    pub fn add(&mut self, format: &str, names: &[&str]) -> bool {
        match EventFormat::parse(format) {
            Some(f) => self.format = f,
            None => return false,
        }
        let mut custom = false;
        for name in names {
            if custom && !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                self.subclasses.insert((*name).to_owned());
                continue;
            }
            match *name {
                "ALL" => {
                    self.all = true;
                    self.nixed.clear();
                }
                "CUSTOM" => custom = true,
                n => {
                    self.nixed.remove(n);
                    self.names.insert(n.to_owned());
                }
            }
        }
        true
    }

    /// `nixevent <names…>`.
    pub fn remove(&mut self, names: &[&str]) {
        for name in names {
            if !self.names.remove(*name) && !self.subclasses.remove(*name) && self.all {
                self.nixed.insert((*name).to_owned());
            }
        }
    }

    /// `noevents`.
    pub fn clear(&mut self) {
        let format = self.format;
        let filters = std::mem::take(&mut self.filters);
        *self = Subscription {
            format,
            filters,
            ..Subscription::default()
        };
    }

    /// `filter <header> <value>`.
    pub fn add_filter(&mut self, header: &str, value: &str) {
        self.filters.push((header.to_owned(), value.to_owned()));
    }

    /// `filter delete <header> [<value>]` (`filter delete all` removes every filter).
    pub fn delete_filter(&mut self, header: &str, value: Option<&str>) {
        if header.eq_ignore_ascii_case("all") {
            self.filters.clear();
            return;
        }
        self.filters
            .retain(|(h, v)| !(h == header && value.is_none_or(|val| val == v)));
    }

    /// Whether `ev` is delivered to this connection.
    pub fn wants(&self, ev: &Event) -> bool {
        let name = ev.name().unwrap_or_default();
        let by_name = if name == "CUSTOM" {
            let sub = ev.get("Event-Subclass").unwrap_or_default();
            (self.all && !self.nixed.contains("CUSTOM")) || self.subclasses.contains(sub)
        } else {
            (self.all && !self.nixed.contains(name)) || self.names.contains(name)
        };
        if !by_name {
            return false;
        }
        self.filters.is_empty()
            || self
                .filters
                .iter()
                .any(|(h, v)| ev.get(h).is_some_and(|actual| actual == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, uuid: &str) -> Event {
        let mut e = Core::new("h").event(name, ("test.c", "test"));
        e.push("Unique-ID", uuid);
        e
    }

    #[test]
    fn names_all_nix_and_filters() {
        let mut s = Subscription::default();
        assert!(!s.wants(&ev("CHANNEL_ANSWER", "a")));
        assert!(s.add("plain", &["CHANNEL_ANSWER", "BACKGROUND_JOB"]));
        assert!(s.wants(&ev("CHANNEL_ANSWER", "a")));
        assert!(!s.wants(&ev("CHANNEL_CREATE", "a")));
        s.add("plain", &["ALL"]);
        assert!(s.wants(&ev("CHANNEL_CREATE", "a")));
        s.remove(&["CHANNEL_CREATE"]);
        assert!(!s.wants(&ev("CHANNEL_CREATE", "a")));
        s.add_filter("Unique-ID", "b");
        assert!(!s.wants(&ev("CHANNEL_ANSWER", "a")));
        assert!(s.wants(&ev("CHANNEL_ANSWER", "b")));
        s.delete_filter("Unique-ID", None);
        assert!(s.wants(&ev("CHANNEL_ANSWER", "a")));
        s.clear();
        assert!(!s.is_active());
        assert!(!s.add("yaml", &["ALL"]));
    }

    #[test]
    fn custom_subclasses() {
        let mut s = Subscription::default();
        s.add("plain", &["CUSTOM", "avmd::beep"]);
        let mut beep = ev("CUSTOM", "a");
        beep.push("Event-Subclass", "avmd::beep");
        assert!(s.wants(&beep));
        let mut other = ev("CUSTOM", "a");
        other.push("Event-Subclass", "sofia::register");
        assert!(!s.wants(&other));
    }

    #[test]
    fn core_headers_come_first_in_order() {
        let e = Core::new("host").event("HEARTBEAT", ("test.c", "test"));
        let names: Vec<&str> = e.headers().map(|(k, _)| k).collect();
        assert_eq!(
            &names[..3],
            &["Event-Name", "Core-UUID", "FreeSWITCH-Hostname"]
        );
        assert!(names.contains(&"Event-Date-Timestamp"));
        assert_eq!(e.name(), Some("HEARTBEAT"));
    }
}

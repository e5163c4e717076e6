//! The FreeSWITCH simulator, driven from the outside with the ESL codec (plain TcpStream +
//! Framed), as the dialer and the controller will drive it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use uuid::Uuid;

use discador::config::Secret;
use discador::esl::{
    Api, Auth, BgApi, Command, EslCodec, Event, EventFormat, Frame, FrameKind, Linger, MyEvents,
    SendMsg, Subscribe,
};
use discador::sim::{Faults, SimConfig, SimHandle, Simulator, Timings, OVER_LIMIT_CAUSE};

const WAIT: Duration = Duration::from_secs(10);

/// Realistic timings, run 100 times faster by `time_scale` 0.01.
fn fast_timings() -> Timings {
    Timings {
        ring_ms: 3_000,
        reject_ms: 1_000,
        talk_ms: 15_000,
        amd_ms: 4_000,
        playback_ms: 4_000,
        beep_ms: 3_000,
        max_call_ms: 2_000_000,
    }
}

fn config() -> SimConfig {
    SimConfig {
        timings: fast_timings(),
        // time_scale 0.01: originate_timeout=N seconds rings N × 10 ms.
        ..SimConfig::for_tests()
    }
}

async fn start(cfg: SimConfig) -> Result<SimHandle> {
    Simulator::start(cfg).await
}

/// A raw ESL client: frames in order, events buffered apart from replies.
struct Client {
    framed: Framed<TcpStream, EslCodec>,
    events: VecDeque<Event>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        let mut c = Client {
            framed: Framed::new(stream, EslCodec::new()),
            events: VecDeque::new(),
        };
        let greeting = c.frame().await?;
        if greeting.kind() != FrameKind::AuthRequest {
            bail!("expected auth/request, got {:?}", greeting.kind());
        }
        Ok(c)
    }

    async fn authed(addr: SocketAddr) -> Result<Client> {
        let mut c = Client::connect(addr).await?;
        let reply = c.cmd(Auth::new(&Secret::new("ClueCon"))?).await?;
        if reply.reply_text() != Some("+OK accepted") {
            bail!("auth refused: {:?}", reply.reply_text());
        }
        Ok(c)
    }

    async fn frame(&mut self) -> Result<Frame> {
        match tokio::time::timeout(WAIT, self.framed.next()).await {
            Err(_) => bail!("no frame within {WAIT:?}"),
            Ok(None) => bail!("connection closed"),
            Ok(Some(f)) => Ok(f?),
        }
    }

    /// Next frame that is not an event (events are kept for `event`).
    async fn reply(&mut self) -> Result<Frame> {
        loop {
            let f = self.frame().await?;
            match f.kind() {
                FrameKind::EventPlain | FrameKind::EventJson => self.events.push_back(f.event()?),
                _ => return Ok(f),
            }
        }
    }

    async fn cmd(&mut self, cmd: impl Into<Command>) -> Result<Frame> {
        self.framed.send(cmd.into()).await?;
        self.reply().await
    }

    async fn api(&mut self, cmd: &str) -> Result<String> {
        let f = self.cmd(Api::new(cmd)?).await?;
        Ok(f.body_str()?.to_owned())
    }

    async fn bgapi(&mut self, cmd: &str) -> Result<Uuid> {
        let job = Uuid::new_v4();
        let f = self.cmd(BgApi::new(cmd, job)?).await?;
        let expected = format!("+OK Job-UUID: {job}");
        if f.reply_text() != Some(expected.as_str()) {
            bail!("bgapi reply {:?}", f.reply_text());
        }
        Ok(job)
    }

    async fn subscribe(&mut self, format: EventFormat, names: &[&str]) -> Result<()> {
        let f = self.cmd(Subscribe::new(format, names)?).await?;
        if !f.is_ok_reply() {
            bail!("event refused: {:?}", f.reply_text());
        }
        Ok(())
    }

    /// First event (buffered or new) for which `pred` holds.
    async fn event(&mut self, pred: impl Fn(&Event) -> bool) -> Result<Event> {
        if let Some(i) = self.events.iter().position(&pred) {
            if let Some(ev) = self.events.remove(i) {
                return Ok(ev);
            }
        }
        loop {
            let f = self.frame().await?;
            match f.kind() {
                FrameKind::EventPlain | FrameKind::EventJson => {
                    let ev = f.event()?;
                    if pred(&ev) {
                        return Ok(ev);
                    }
                    self.events.push_back(ev);
                }
                other => bail!("unexpected {other:?} while waiting for an event"),
            }
        }
    }

    async fn job(&mut self, job: Uuid) -> Result<String> {
        let j = job.to_string();
        let ev = self
            .event(|e| e.name() == Some("BACKGROUND_JOB") && e.job_uuid() == Some(j.as_str()))
            .await?;
        Ok(ev.body().unwrap_or_default().to_owned())
    }

    /// Every buffered-or-arriving event of `uuid` up to and including HANGUP_COMPLETE.
    async fn call_events(&mut self, uuid: &str) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        loop {
            let ev = self.event(|e| e.unique_id() == Some(uuid)).await?;
            let done = ev.name() == Some("CHANNEL_HANGUP_COMPLETE");
            out.push(ev);
            if done {
                return Ok(out);
            }
        }
    }
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().filter_map(Event::name).collect()
}

fn originate_cmd(uuid: &str, number: &str, target: &str) -> String {
    format!(
        "originate {{origination_uuid={uuid},originate_timeout=20,origination_caller_id_number=5550100,\
         discador_campana=PRUEBA,discador_numero=42,discador_intento=1}}sofia/gateway/gw_pstn/{number} {target}"
    )
}

#[tokio::test]
async fn auth_accepts_the_password_and_refuses_others() -> Result<()> {
    let sim = start(config()).await?;
    Client::authed(sim.addr).await?;

    let mut bad = Client::connect(sim.addr).await?;
    let reply = bad.cmd(Auth::new(&Secret::new("wrong"))?).await?;
    assert_eq!(reply.reply_text(), Some("-ERR invalid"));
    let notice = bad.frame().await?;
    assert_eq!(notice.kind(), FrameKind::DisconnectNotice);
    assert!(bad.frame().await.is_err(), "connection must close");

    let mut early = Client::connect(sim.addr).await?;
    let reply = early.cmd(Api::new("status")?).await?;
    assert_eq!(reply.reply_text(), Some("-ERR command not found"));
    sim.shutdown().await;

    let sim = start(SimConfig {
        faults: Faults {
            refuse_auth: true,
            ..Faults::default()
        },
        ..config()
    })
    .await?;
    let mut c = Client::connect(sim.addr).await?;
    let reply = c.cmd(Auth::new(&Secret::new("ClueCon"))?).await?;
    assert_eq!(reply.reply_text(), Some("-ERR invalid"));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn api_commands_answer_like_freeswitch() -> Result<()> {
    let sim = start(config()).await?;
    let mut c = Client::authed(sim.addr).await?;
    assert!(c.api("status").await?.contains("is ready"));
    assert!(c
        .api("version")
        .await?
        .starts_with("FreeSWITCH Version 1.10"));
    assert_eq!(c.api("show channels as json").await?, "{\"row_count\":0}\n");
    assert_eq!(c.api("show channels").await?, "\n0 total.\n");
    assert_eq!(
        c.api("frobnicate now").await?,
        "-ERR frobnicate Command not found!\n"
    );
    assert_eq!(c.api("uuid_kill").await?, "-USAGE: <uuid> [cause]\n");

    // A no-answer number with a long timeout stays ringing while we look at it.
    let uuid = Uuid::new_v4().to_string();
    let cmd = format!(
        "originate {{origination_uuid={uuid},originate_timeout=600}}sofia/gateway/gw_pstn/600000001 &park()"
    );
    c.subscribe(EventFormat::Plain, &["CHANNEL_CREATE", "BACKGROUND_JOB"])
        .await?;
    let job = c.bgapi(&cmd).await?;
    c.event(|e| e.name() == Some("CHANNEL_CREATE")).await?;
    let json: serde_json::Value = serde_json::from_str(&c.api("show channels as json").await?)?;
    assert_eq!(json["row_count"], 1);
    assert_eq!(json["rows"][0]["uuid"], uuid.as_str());
    assert_eq!(json["rows"][0]["callstate"], "RINGING");
    let plain = c.api("show channels").await?;
    assert!(plain.starts_with("uuid,direction,created,"), "{plain}");
    assert!(plain.ends_with("\n1 total.\n"), "{plain}");
    assert_eq!(c.api(&format!("uuid_exists {uuid}")).await?, "true");
    assert_eq!(c.api(&format!("uuid_kill {uuid}")).await?, "+OK\n");
    assert_eq!(c.job(job).await?, "-ERR MANAGER_REQUEST\n");
    assert_eq!(c.api(&format!("uuid_exists {uuid}")).await?, "false");
    assert_eq!(
        c.api(&format!("uuid_kill {uuid}")).await?,
        "-ERR No such channel!\n"
    );
    sim.shutdown().await;
    Ok(())
}

/// One bgapi originate per last digit: BACKGROUND_JOB body, event sequence, causes.
#[tokio::test]
async fn every_outcome_digit_behaves_as_documented() -> Result<()> {
    let sim = start(config()).await?;
    let mut c = Client::authed(sim.addr).await?;
    c.subscribe(
        EventFormat::Plain,
        &[
            "CHANNEL_CREATE",
            "CHANNEL_PROGRESS",
            "CHANNEL_ANSWER",
            "CHANNEL_HANGUP",
            "CHANNEL_HANGUP_COMPLETE",
            "BACKGROUND_JOB",
        ],
    )
    .await?;
    let answered = [
        "CHANNEL_CREATE",
        "CHANNEL_PROGRESS",
        "CHANNEL_ANSWER",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
    ];
    let failed = [
        "CHANNEL_CREATE",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
    ];
    let rang_out = [
        "CHANNEL_CREATE",
        "CHANNEL_PROGRESS",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
    ];
    let table: [(char, Option<&str>, &str, &[&str]); 10] = [
        ('0', Some("USER_BUSY"), "USER_BUSY", &failed),
        ('1', Some("NO_ANSWER"), "NO_ANSWER", &rang_out),
        (
            '2',
            Some("UNALLOCATED_NUMBER"),
            "UNALLOCATED_NUMBER",
            &failed,
        ),
        ('3', None, "NORMAL_CLEARING", &answered),
        ('4', Some("CALL_REJECTED"), "CALL_REJECTED", &failed),
        (
            '5',
            Some("NORMAL_TEMPORARY_FAILURE"),
            "NORMAL_TEMPORARY_FAILURE",
            &failed,
        ),
        ('6', None, "NORMAL_CLEARING", &answered),
        ('7', None, "NORMAL_CLEARING", &answered),
        ('8', None, "NORMAL_CLEARING", &answered),
        ('9', None, "NORMAL_CLEARING", &answered),
    ];
    for (digit, err, final_cause, sequence) in table {
        let uuid = Uuid::new_v4().to_string();
        let number = format!("60000000{digit}");
        let job = c
            .bgapi(&originate_cmd(&uuid, &number, "humano XML discador"))
            .await?;
        let body = c.job(job).await?;
        match err {
            Some(cause) => assert_eq!(body, format!("-ERR {cause}\n"), "digit {digit}"),
            None => assert_eq!(body, format!("+OK {uuid}\n"), "digit {digit}"),
        }
        let events = c.call_events(&uuid).await?;
        assert_eq!(names(&events), sequence.to_vec(), "digit {digit}");
        let complete = events.last().ok_or_else(|| anyhow!("no events"))?;
        assert_eq!(complete.hangup_cause(), Some(final_cause), "digit {digit}");
        assert_eq!(complete.variable("discador_campana"), Some("PRUEBA"));
        assert_eq!(complete.variable("discador_numero"), Some("42"));
        assert!(complete.variable("billsec").is_some());
        assert!(complete.variable("duration").is_some());
        assert_eq!(complete.get("Call-Direction"), Some("outbound"));
        assert_eq!(complete.get("Channel-Call-UUID"), Some(uuid.as_str()));
        let create = &events[0];
        assert_eq!(
            create.get("Caller-Destination-Number"),
            Some(number.as_str())
        );
        assert_eq!(create.get("Caller-Caller-ID-Number"), Some("5550100"));
        assert!(create.get("Event-Date-Timestamp").is_some());
        assert_eq!(create.get("Core-UUID"), Some(sim.core_uuid()));
    }
    // BACKGROUND_JOB carries Job-Command and its argument.
    let uuid = Uuid::new_v4().to_string();
    let cmd = originate_cmd(&uuid, "600000002", "&park()");
    let job = c.bgapi(&cmd).await?;
    let j = job.to_string();
    let ev = c
        .event(|e| e.name() == Some("BACKGROUND_JOB") && e.job_uuid() == Some(j.as_str()))
        .await?;
    assert_eq!(ev.get("Job-Command"), Some("originate"));
    assert_eq!(ev.get("Job-Command-Arg"), cmd.strip_prefix("originate "));
    let finished = sim.finished();
    assert_eq!(finished.len(), 11);
    assert!(finished
        .iter()
        .all(|f| f.answered == (f.cause == "NORMAL_CLEARING")));
    assert!(finished
        .iter()
        .filter(|f| f.answered)
        .all(|f| f.transferred_to.is_none()));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn json_events_and_sync_originate() -> Result<()> {
    let sim = start(config()).await?;
    let mut c = Client::authed(sim.addr).await?;
    c.subscribe(
        EventFormat::Json,
        &["CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"],
    )
    .await?;
    let uuid = Uuid::new_v4().to_string();
    // api originate blocks until the answer, like FreeSWITCH's.
    let reply = c
        .api(&originate_cmd(&uuid, "600000007", "maquina XML discador"))
        .await?;
    assert_eq!(reply, format!("+OK {uuid}\n"));
    let answer = c.event(|e| e.name() == Some("CHANNEL_ANSWER")).await?;
    assert_eq!(answer.unique_id(), Some(uuid.as_str()));
    assert_eq!(answer.get("Answer-State"), Some("answered"));
    let done = c
        .event(|e| e.name() == Some("CHANNEL_HANGUP_COMPLETE"))
        .await?;
    assert_eq!(done.hangup_cause(), Some("NORMAL_CLEARING"));
    // The answered channel entered the dialplan: its profile's destination is the extension.
    assert_eq!(done.get("Caller-Destination-Number"), Some("maquina"));
    assert_eq!(done.get("Caller-RDNIS"), Some("600000007"));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn malformed_originates_fail_without_a_channel() -> Result<()> {
    let sim = start(config()).await?;
    let mut c = Client::authed(sim.addr).await?;
    assert!(c
        .api("originate sofia/gateway/gw/600000006")
        .await?
        .starts_with("-USAGE: "));
    assert_eq!(
        c.api("originate foo/bar/600000006 &park()").await?,
        "-ERR CHAN_NOT_IMPLEMENTED\n"
    );
    assert_eq!(
        c.api("originate {a=b sofia/gateway/gw/6 &park()").await?,
        "-ERR DESTINATION_OUT_OF_ORDER\n"
    );
    assert_eq!(sim.finished().len(), 0);
    // A number the network cannot parse: a channel, then INVALID_NUMBER_FORMAT.
    assert_eq!(
        c.api("originate sofia/gateway/gw/60ab0006 &park()").await?,
        "-ERR INVALID_NUMBER_FORMAT\n"
    );
    assert_eq!(sim.originates().len(), 4);
    assert!(sim.wait_finished(1, WAIT).await);
    assert_eq!(sim.finished()[0].cause, "INVALID_NUMBER_FORMAT");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn sessions_per_second_refuses_the_burst_excess() -> Result<()> {
    let sim = start(SimConfig { sps: 5, ..config() }).await?;
    let mut c = Client::authed(sim.addr).await?;
    c.subscribe(EventFormat::Plain, &["BACKGROUND_JOB", "CHANNEL_CREATE"])
        .await?;
    // Pipelined: all ten commands are written before any reply is read, so they reach the
    // simulator within a few milliseconds even on a loaded machine.
    let mut jobs = Vec::new();
    for i in 0..10 {
        // Humans answer quickly and stay parked.
        let cmd = format!("originate sofia/gateway/gw_pstn/60000{i:03}6 &park()");
        let job = Uuid::new_v4();
        c.framed.send(Command::from(BgApi::new(&cmd, job)?)).await?;
        jobs.push(job);
    }
    for job in &jobs {
        let reply = c.reply().await?;
        assert_eq!(
            reply.reply_text(),
            Some(format!("+OK Job-UUID: {job}").as_str())
        );
    }
    let mut refused = 0;
    for job in jobs {
        let body = c.job(job).await?;
        if body == format!("-ERR {OVER_LIMIT_CAUSE}\n") {
            refused += 1;
        } else {
            assert!(body.starts_with("+OK "), "{body}");
        }
    }
    // 10 attempts inside at most two one-second windows, 4 admitted per window (sps - 1).
    assert!(refused >= 2, "only {refused} refused");
    let admitted = 10 - refused;
    assert_eq!(
        sim.live_calls(),
        admitted,
        "refused originates must not create channels"
    );
    assert_eq!(sim.originates().len(), 10, "every originate is logged");
    assert!(c
        .api("hupall")
        .await?
        .starts_with("+OK hangup all channels"));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn max_sessions_caps_live_channels() -> Result<()> {
    let sim = start(SimConfig {
        max_sessions: 2,
        ..config()
    })
    .await?;
    let mut c = Client::authed(sim.addr).await?;
    let park =
        |n: u32| format!("originate {{originate_timeout=600}}sofia/gateway/gw/6000000{n}6 &park()");
    let first = c.api(&park(1)).await?;
    assert!(first.starts_with("+OK "), "{first}");
    assert!(c.api(&park(2)).await?.starts_with("+OK "));
    assert_eq!(c.api(&park(3)).await?, format!("-ERR {OVER_LIMIT_CAUSE}\n"));
    assert_eq!(sim.live_calls(), 2);
    let uuid = first.trim().trim_start_matches("+OK ").to_owned();
    assert_eq!(
        c.api(&format!("uuid_kill {uuid} NORMAL_CLEARING")).await?,
        "+OK\n"
    );
    let deadline = Instant::now() + WAIT;
    while sim.live_calls() > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(c.api(&park(4)).await?.starts_with("+OK "));
    sim.shutdown().await;
    Ok(())
}

/// A simulator whose socket leg connects to a listener of the test's (`cfg`'s `socket_addr` is
/// set to it), and an authenticated inbound client subscribed to `events` (none: no subscription).
async fn with_socket(cfg: SimConfig, events: &[&str]) -> Result<(TcpListener, SimHandle, Client)> {
    let (listener, ctl_addr) = controller().await?;
    let sim = start(SimConfig {
        socket_addr: ctl_addr,
        ..cfg
    })
    .await?;
    let mut c = Client::authed(sim.addr).await?;
    if !events.is_empty() {
        c.subscribe(EventFormat::Plain, events).await?;
    }
    Ok((listener, sim, c))
}

/// A tiny controller: accepts the simulator's socket connection.
async fn controller() -> Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

async fn accept(l: &TcpListener) -> Result<Client> {
    let (stream, _) = tokio::time::timeout(WAIT, l.accept())
        .await
        .context("no socket connection")??;
    Ok(Client {
        framed: Framed::new(stream, EslCodec::new()),
        events: VecDeque::new(),
    })
}

async fn execute(s: &mut Client, app: &str, arg: &str) -> Result<Event> {
    let id = Uuid::new_v4();
    let reply = s
        .cmd(SendMsg::execute(app, arg)?.event_lock().event_uuid(id))
        .await?;
    assert_eq!(reply.reply_text(), Some("+OK"));
    let id = id.to_string();
    let start = s
        .event(|e| e.name() == Some("CHANNEL_EXECUTE") && e.application_uuid() == Some(id.as_str()))
        .await?;
    assert_eq!(start.application(), Some(app));
    s.event(|e| {
        e.name() == Some("CHANNEL_EXECUTE_COMPLETE") && e.application_uuid() == Some(id.as_str())
    })
    .await
}

#[tokio::test]
async fn socket_leg_runs_the_controllers_script() -> Result<()> {
    let (listener, sim, mut c) =
        with_socket(config(), &["BACKGROUND_JOB", "CUSTOM", "avmd::beep"]).await?;

    for (number, verdict, exten, resultado) in [
        ("600000003", "MACHINE", "maquina", "MAQUINA"),
        ("600000006", "HUMAN", "humano", "HUMANO"),
        ("600000009", "NOTSURE", "humano", "HUMANO"),
    ] {
        let uuid = Uuid::new_v4().to_string();
        let job = c
            .bgapi(&originate_cmd(&uuid, number, "discador XML discador"))
            .await?;
        let mut s = accept(&listener).await?;
        let reply = s.cmd(Command::Connect).await?;
        // FreeSWITCH URL-encodes every header of the connect reply, Reply-Text included.
        assert_eq!(reply.header("Reply-Text"), Some("%2BOK%0A"));
        assert_eq!(reply.header("Socket-Mode"), Some("async"));
        assert_eq!(reply.header("Control"), Some("full"));
        let data = reply.headers_as_event();
        assert_eq!(data.unique_id(), Some(uuid.as_str()));
        assert_eq!(data.get("Channel-Unique-ID"), Some(uuid.as_str()));
        assert_eq!(data.variable("discador_campana"), Some("PRUEBA"));
        assert_eq!(data.get("Caller-Destination-Number"), Some("discador"));
        assert_eq!(data.get("Answer-State"), Some("answered"));
        assert_eq!(c.job(job).await?, format!("+OK {uuid}\n"));

        assert_eq!(
            s.cmd(MyEvents::new()).await?.reply_text(),
            Some("+OK Events Enabled")
        );
        // `myevents` leaves CUSTOM events out: the beep needs its own subscription.
        assert_eq!(
            s.cmd(Subscribe::new(
                EventFormat::Plain,
                &["CUSTOM", "avmd::beep"]
            )?)
            .await?
            .reply_text(),
            Some("+OK event listener enabled plain")
        );
        assert_eq!(
            s.cmd(Linger::new(Some(1))).await?.reply_text(),
            Some("+OK will linger 1 seconds")
        );
        let amd = execute(&mut s, "amd", "").await?;
        assert_eq!(amd.variable("amd_result"), Some(verdict));
        assert!(amd.variable("amd_cause").is_some());
        let avmd = execute(&mut s, "avmd_start", "").await?;
        assert_eq!(avmd.application(), Some("avmd_start"));
        if verdict == "MACHINE" {
            let beep = s.event(|e| e.subclass() == Some("avmd::beep")).await?;
            assert_eq!(beep.get("Beep-Status"), Some("DETECTED"));
            let u = uuid.clone();
            c.event(move |e| {
                e.subclass() == Some("avmd::beep") && e.unique_id() == Some(u.as_str())
            })
            .await?;
        }
        let set = execute(&mut s, "set", &format!("discador_resultado={resultado}")).await?;
        assert_eq!(set.variable("discador_resultado"), Some(resultado));
        let xfer = execute(&mut s, "transfer", &format!("{exten} XML discador")).await?;
        assert_eq!(xfer.get("Caller-Destination-Number"), Some(exten));
        // The extension plays, then hangs up: HANGUP … HANGUP_COMPLETE (never DESTROY), then
        // the linger notice; the session stays for the linger time, then goodbye.
        let hangup = s
            .event(|e| e.name() == Some("CHANNEL_HANGUP_COMPLETE"))
            .await?;
        assert_eq!(hangup.hangup_cause(), Some("NORMAL_CLEARING"));
        assert_eq!(hangup.variable("amd_result"), Some(verdict));
        let notice = s.reply().await?;
        assert_eq!(notice.kind(), FrameKind::DisconnectNotice);
        assert_eq!(notice.header("Content-Disposition"), Some("linger"));
        assert_eq!(notice.header("Linger-Time"), Some("1"));
        // A sendmsg after the hangup is acknowledged and never runs.
        assert_eq!(
            s.cmd(SendMsg::execute("playback", "silence_stream://10")?)
                .await?
                .reply_text(),
            Some("+OK")
        );
        let u = uuid.clone();
        assert_eq!(
            c.api(&format!("uuid_exists {u}")).await?,
            "true",
            "a lingering session still exists"
        );
        let t0 = Instant::now();
        let bye = s.reply().await?;
        assert_eq!(bye.kind(), FrameKind::DisconnectNotice);
        assert_eq!(bye.header("Content-Disposition"), Some("disconnect"));
        assert!(
            t0.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        assert!(
            s.frame().await.is_err(),
            "socket must close after the goodbye"
        );
        assert!(
            s.events.iter().all(|e| e.name() != Some("CHANNEL_DESTROY")
                && e.application() != Some("playback")),
            "{:?}",
            s.events.iter().map(|e| e.name()).collect::<Vec<_>>()
        );

        let f = sim
            .finished()
            .into_iter()
            .find(|f| f.uuid == uuid)
            .ok_or_else(|| anyhow!("call not finished"))?;
        assert_eq!(f.amd.as_deref(), Some(verdict));
        assert_eq!(f.transferred_to.as_deref(), Some(exten));
        assert_eq!(f.cause, "NORMAL_CLEARING");
        assert!(f
            .vars
            .iter()
            .any(|(k, v)| k == "discador_resultado" && v == resultado));
    }
    sim.shutdown().await;
    Ok(())
}

/// `myevents` alone never carries the beep (transcript `avmd-machine-myevents-only`), though the
/// beep happened: an inbound listener subscribed to it hears it.
#[tokio::test]
async fn socket_leg_sends_custom_events_only_when_subscribed() -> Result<()> {
    let (listener, sim, mut c) = with_socket(config(), &["CUSTOM", "avmd::beep"]).await?;
    let uuid = Uuid::new_v4().to_string();
    c.bgapi(&originate_cmd(&uuid, "600000003", "discador XML discador"))
        .await?;
    let mut s = accept(&listener).await?;
    s.cmd(Command::Connect).await?;
    s.cmd(MyEvents::new()).await?;
    execute(&mut s, "avmd_start", "").await?;
    let u = uuid.clone();
    c.event(move |e| e.subclass() == Some("avmd::beep") && e.unique_id() == Some(u.as_str()))
        .await?;
    s.cmd(SendMsg::hangup("NORMAL_CLEARING")?).await?;
    s.event(|e| e.name() == Some("CHANNEL_HANGUP_COMPLETE"))
        .await?;
    assert!(
        s.events.iter().all(|e| e.name() != Some("CUSTOM")),
        "myevents must not carry CUSTOM events"
    );
    sim.shutdown().await;
    Ok(())
}

/// Closing the socket before `connect` parks the call in the socket application until the called
/// party hangs up (transcript `close-before-connect`); a missing module's application hangs up
/// with DESTINATION_OUT_OF_ORDER and no CHANNEL_EXECUTE (transcript `missing-app`); an unknown
/// gateway is `-ERR INVALID_GATEWAY` with no channel (transcript `inbound-failures`).
#[tokio::test]
async fn socket_leg_parks_on_early_close_and_missing_things_fail_like_freeswitch() -> Result<()> {
    let (listener, sim, mut c) = with_socket(
        SimConfig {
            missing_modules: vec!["mod_amd".to_owned()],
            gateways: vec!["gw_pstn".to_owned()],
            timings: Timings {
                talk_ms: 60_000,
                ..Timings::default()
            },
            ..config()
        },
        &[
            "CHANNEL_CREATE",
            "CHANNEL_HANGUP_COMPLETE",
            "BACKGROUND_JOB",
        ],
    )
    .await?;
    assert_eq!(c.api("module_exists mod_amd").await?, "false");
    assert_eq!(c.api("module_exists mod_avmd").await?, "true");
    assert_eq!(c.api("global_getvar core_uuid").await?, sim.core_uuid());

    // Closed before connect: still there after the close, until the party hangs up.
    let uuid = Uuid::new_v4().to_string();
    c.bgapi(&originate_cmd(&uuid, "600000006", "discador XML discador"))
        .await?;
    drop(accept(&listener).await?);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.api(&format!("uuid_exists {uuid}")).await?, "true");
    let u = uuid.clone();
    let done = c
        .event(move |e| {
            e.name() == Some("CHANNEL_HANGUP_COMPLETE") && e.unique_id() == Some(u.as_str())
        })
        .await
        .context("the parked call ends")?;
    assert_eq!(done.hangup_cause(), Some("NORMAL_CLEARING"));
    assert!(done.get("variable_billsec").is_some());

    // `amd` of a missing mod_amd.
    let uuid = Uuid::new_v4().to_string();
    c.bgapi(&originate_cmd(&uuid, "600000006", "discador XML discador"))
        .await?;
    let mut s = accept(&listener).await?;
    s.cmd(Command::Connect).await?;
    s.cmd(MyEvents::new()).await?;
    s.cmd(Linger::new(Some(1))).await?;
    assert_eq!(
        s.cmd(SendMsg::execute("amd", "")?.event_lock())
            .await?
            .reply_text(),
        Some("+OK")
    );
    let hangup = s
        .event(|e| e.name() == Some("CHANNEL_HANGUP"))
        .await
        .context("a missing application hangs up")?;
    assert_eq!(hangup.hangup_cause(), Some("DESTINATION_OUT_OF_ORDER"));
    s.event(|e| e.name() == Some("CHANNEL_HANGUP_COMPLETE"))
        .await?;
    assert!(
        s.events.iter().all(|e| e.application() != Some("amd")),
        "no CHANNEL_EXECUTE for a missing application"
    );

    // An unknown gateway: no channel at all.
    let uuid = Uuid::new_v4().to_string();
    let job = c
        .bgapi(&format!(
            "originate {{origination_uuid={uuid}}}sofia/gateway/no_such_gw/600000006 &park()"
        ))
        .await?;
    assert_eq!(c.job(job).await?, "-ERR INVALID_GATEWAY\n");
    assert_eq!(c.api(&format!("uuid_exists {uuid}")).await?, "false");
    assert!(
        c.events
            .iter()
            .all(|e| e.unique_id() != Some(uuid.as_str())),
        "no channel event for an unknown gateway"
    );
    sim.shutdown().await;
    Ok(())
}

/// The part of a frame a controller acts on, to compare the simulator with a capture: replies and
/// notices by their text, channel events by name, application and cause. Events the simulator does
/// not model (CHANNEL_PARK, CHANNEL_UNPARK, CHANNEL_STATE, the `socket` application's own) are
/// left out.
fn shape(f: &Frame) -> Option<String> {
    match f.kind() {
        FrameKind::CommandReply => Some(format!("reply {}", f.reply_text().unwrap_or(""))),
        FrameKind::DisconnectNotice => Some(format!(
            "notice {}",
            f.header("Content-Disposition").unwrap_or("")
        )),
        FrameKind::EventPlain | FrameKind::EventJson => {
            let ev = f.event().ok()?;
            match ev.name()? {
                name @ ("CHANNEL_EXECUTE" | "CHANNEL_EXECUTE_COMPLETE") => {
                    let app = ev.application()?;
                    (app != "socket").then(|| format!("{name} {app}"))
                }
                name @ ("CHANNEL_HANGUP" | "CHANNEL_HANGUP_COMPLETE") => {
                    Some(format!("{name} {}", ev.hangup_cause().unwrap_or("")))
                }
                "CUSTOM" => Some(format!("CUSTOM {}", ev.subclass().unwrap_or(""))),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Shapes up to the transfer's completion: after it the real switch runs its own `humano`
/// extension (log, playback, bridge) and the simulator its stand-in.
fn until_transfer(shapes: Vec<String>) -> Vec<String> {
    match shapes
        .iter()
        .position(|s| s == "CHANNEL_EXECUTE_COMPLETE transfer")
    {
        Some(i) => shapes[..=i].to_vec(),
        None => shapes,
    }
}

fn transcript(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/tests/fixtures/esl-transcripts/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The controller's commands of four captured calls, replayed to the simulator's socket leg: it
/// answers with the same replies, events and notices, in the same order, as FreeSWITCH 1.10.12 did
/// (transcripts `amd-human`, `amd-machine`, `no-linger-hangup`, `missing-app`).
#[tokio::test]
async fn the_socket_leg_answers_captured_commands_as_freeswitch_did() -> Result<()> {
    let (listener, sim, mut c) = with_socket(config(), &[]).await?;
    for (scenario, number) in [
        ("amd-human", "600000006"),
        ("amd-machine", "600000003"),
        ("no-linger-hangup", "600000006"),
        ("missing-app", "600000006"),
    ] {
        let mut codec = EslCodec::new();
        let mut buf =
            bytes::BytesMut::from(&transcript(&format!("{scenario}.outbound.from-fs"))[..]);
        let mut captured = Vec::new();
        while let Some(f) = tokio_util::codec::Decoder::decode(&mut codec, &mut buf)? {
            captured.push(f);
        }
        let captured_uuid = captured[0]
            .header("Unique-ID")
            .context("connect reply names the channel")?
            .to_owned();
        let ends_closed = captured
            .last()
            .is_some_and(|f| f.header("Content-Disposition") == Some("disconnect"));
        let commands = String::from_utf8(transcript(&format!("{scenario}.outbound.to-fs")))?;

        let uuid = Uuid::new_v4().to_string();
        c.bgapi(&originate_cmd(&uuid, number, "discador XML discador"))
            .await?;
        let mut s = accept(&listener).await?;
        let mut got = Vec::new();
        let sent: Vec<&str> = commands.split_inclusive("\n\n").collect();
        for (i, cmd) in sent.iter().enumerate() {
            use tokio::io::AsyncWriteExt;
            s.framed
                .get_mut()
                .write_all(cmd.replace(&captured_uuid, &uuid).as_bytes())
                .await?;
            // What the switch says until it is quiet (or, after the last command of a capture
            // that ends with the goodbye, until it closes: a linger is real seconds).
            let quiet = if i + 1 == sent.len() && ends_closed {
                Duration::from_secs(10)
            } else {
                Duration::from_millis(300)
            };
            while let Ok(Some(f)) = tokio::time::timeout(quiet, s.framed.next()).await {
                got.push(f?);
            }
        }
        let want = until_transfer(captured.iter().filter_map(shape).collect());
        let have = until_transfer(got.iter().filter_map(shape).collect());
        assert!(want.len() >= 4, "{scenario}: {want:?}");
        assert_eq!(have, want, "{scenario}");
        drop(s);
    }
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn socket_leg_hangup_disconnect_and_unreachable() -> Result<()> {
    let (listener, sim, mut c) = with_socket(config(), &["CHANNEL_HANGUP_COMPLETE"]).await?;

    // hangup through sendmsg, without linger: HANGUP, HANGUP_COMPLETE, then goodbye (transcript
    // `no-linger-hangup`).
    let uuid = Uuid::new_v4().to_string();
    c.bgapi(&originate_cmd(&uuid, "600000006", "discador XML discador"))
        .await?;
    let mut s = accept(&listener).await?;
    s.cmd(Command::Connect).await?;
    s.cmd(MyEvents::new()).await?;
    assert_eq!(
        s.cmd(SendMsg::hangup("CALL_REJECTED")?).await?.reply_text(),
        Some("+OK")
    );
    let hangup = s.event(|e| e.name() == Some("CHANNEL_HANGUP")).await?;
    assert_eq!(hangup.hangup_cause(), Some("CALL_REJECTED"));
    s.event(|e| e.name() == Some("CHANNEL_HANGUP_COMPLETE"))
        .await?;
    let bye = s.frame().await?;
    assert_eq!(bye.kind(), FrameKind::DisconnectNotice);
    assert_eq!(bye.header("Content-Disposition"), Some("disconnect"));
    let u = uuid.clone();
    let done = c.event(move |e| e.unique_id() == Some(u.as_str())).await?;
    assert_eq!(done.hangup_cause(), Some("CALL_REJECTED"));

    // The controller goes away without transfer or hangup: NORMAL_CLEARING.
    let uuid = Uuid::new_v4().to_string();
    c.bgapi(&originate_cmd(&uuid, "600000007", "discador XML discador"))
        .await?;
    let mut s = accept(&listener).await?;
    s.cmd(Command::Connect).await?;
    drop(s);
    let u = uuid.clone();
    let done = c.event(move |e| e.unique_id() == Some(u.as_str())).await?;
    assert_eq!(done.hangup_cause(), Some("NORMAL_CLEARING"));
    assert_eq!(done.get("Caller-Destination-Number"), Some("discador"));
    sim.shutdown().await;

    // Nobody listens on the socket address: answered, then hung up at once.
    let ctl_addr = listener.local_addr()?;
    drop(listener);
    let sim = start(SimConfig {
        socket_addr: ctl_addr,
        ..config()
    })
    .await?;
    let mut c = Client::authed(sim.addr).await?;
    c.subscribe(EventFormat::Plain, &["CHANNEL_HANGUP_COMPLETE"])
        .await?;
    let uuid = Uuid::new_v4().to_string();
    assert_eq!(
        c.api(&originate_cmd(&uuid, "600000008", "discador XML discador"))
            .await?,
        format!("+OK {uuid}\n")
    );
    let done = c
        .event(|e| e.name() == Some("CHANNEL_HANGUP_COMPLETE"))
        .await?;
    assert_eq!(done.hangup_cause(), Some("NORMAL_CLEARING"));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn faults_drop_garbage_and_delay() -> Result<()> {
    // Dropped after 3 events.
    let sim = start(SimConfig {
        faults: Faults {
            drop_after_events: Some(3),
            ..Faults::default()
        },
        ..config()
    })
    .await?;
    let mut c = Client::authed(sim.addr).await?;
    c.subscribe(EventFormat::Plain, &["ALL"]).await?;
    c.bgapi("originate sofia/gateway/gw/600000006 humano XML discador")
        .await?;
    let mut got = 0;
    while c.frame().await.is_ok() {
        got += 1;
    }
    assert_eq!(got, 3, "connection must close right after the 3rd event");
    // drop_connections closes a quiet connection too.
    let mut quiet = Client::authed(sim.addr).await?;
    sim.drop_connections();
    assert!(quiet.frame().await.is_err());
    // And the simulator still accepts new ones.
    Client::authed(sim.addr).await?;
    sim.shutdown().await;

    // Garbage every 2 events: the client's decoder reports an error, it does not hang.
    let sim = start(SimConfig {
        faults: Faults {
            garbage_every_events: Some(2),
            ..Faults::default()
        },
        ..config()
    })
    .await?;
    let mut c = Client::authed(sim.addr).await?;
    c.subscribe(EventFormat::Plain, &["ALL"]).await?;
    c.bgapi("originate sofia/gateway/gw/600000006 humano XML discador")
        .await?;
    let mut ok = 0;
    let err = loop {
        match c.frame().await {
            Ok(_) => ok += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(ok, 2, "garbage must follow the 2nd event ({err})");
    sim.shutdown().await;

    // Replies delayed by 150 ms.
    let sim = start(SimConfig {
        faults: Faults {
            reply_delay_ms: Some(150),
            ..Faults::default()
        },
        ..config()
    })
    .await?;
    let mut c = Client::authed(sim.addr).await?;
    let t0 = Instant::now();
    c.api("status").await?;
    assert!(
        t0.elapsed() >= Duration::from_millis(150),
        "reply was not delayed"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn exit_says_bye_and_originate_log_is_written() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("sim-test-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("originates.csv");
    let sim = start(SimConfig {
        originate_log: Some(path.clone()),
        ..config()
    })
    .await?;
    let mut c = Client::authed(sim.addr).await?;
    let uuid = Uuid::new_v4().to_string();
    c.api(&originate_cmd(&uuid, "600000000", "&park()")).await?;
    c.api("originate sofia/gateway/gw/600000002 &park()")
        .await?;
    let reply = c.cmd(Command::Exit).await?;
    assert_eq!(reply.reply_text(), Some("+OK bye"));
    assert_eq!(c.frame().await?.kind(), FrameKind::DisconnectNotice);
    let recs = sim.originates();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].uuid, uuid);
    assert_eq!(recs[0].destination, "600000000");
    assert!(recs[1].at >= recs[0].at);
    let csv = std::fs::read_to_string(&path)?;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].contains(&uuid) && lines[1].contains("600000000"));
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The ESL layer's own client and outbound server against the simulator: the path the dialer and
/// the controller will take, including a reconnection after an injected drop.
#[tokio::test]
async fn esl_client_and_outbound_server_drive_the_simulator() -> Result<()> {
    use discador::esl::inbound::{ConnState, InboundClient, InboundConfig, JobResult};
    use discador::esl::outbound::{OutboundConfig, OutboundServer};
    use tokio_util::sync::CancellationToken;

    let (server, ctl_addr) = OutboundServer::bind(
        "127.0.0.1:0",
        OutboundConfig {
            max_sessions: 10,
            idle_timeout: Duration::from_secs(5),
        },
    )
    .await?;
    let stop = CancellationToken::new();
    let server_task = tokio::spawn(server.run(
        |mut s| async move {
            let _ = async {
                s.myevents().await?;
                s.linger(1).await?;
                let amd = s.execute("amd", "").await?;
                let verdict = amd.variable("amd_result").unwrap_or("NOTSURE").to_owned();
                let (resultado, exten) = if verdict == "MACHINE" {
                    ("MAQUINA", "maquina")
                } else {
                    ("HUMANO", "humano")
                };
                s.set_var("discador_resultado", resultado).await?;
                s.execute("transfer", &format!("{exten} XML discador"))
                    .await?;
                while s.next_event().await.is_ok() {}
                Ok::<(), discador::esl::EslError>(())
            }
            .await;
        },
        stop.clone(),
    ));

    let sim = start(SimConfig {
        socket_addr: ctl_addr,
        ..config()
    })
    .await?;
    let client = InboundClient::start(InboundConfig {
        addr: sim.addr.to_string(),
        password: Secret::new("ClueCon"),
        events: vec!["CHANNEL_HANGUP_COMPLETE".into()],
        format: EventFormat::Plain,
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        command_timeout: Duration::from_secs(5),
    });
    client.wait_connected(WAIT).await?;
    let mut events = client.events();

    for (number, resultado) in [("600000006", "HUMANO"), ("600000003", "MAQUINA")] {
        let uuid = Uuid::new_v4().to_string();
        let job = client
            .bgapi(
                &originate_cmd(&uuid, number, "discador XML discador"),
                Uuid::new_v4(),
            )
            .await?;
        assert_eq!(job.await?, JobResult::Ok(uuid.clone()));
        let done = tokio::time::timeout(WAIT, async {
            loop {
                let ev = events.recv().await?;
                if ev.name() == Some("CHANNEL_HANGUP_COMPLETE")
                    && ev.unique_id() == Some(uuid.as_str())
                {
                    return anyhow::Ok(ev);
                }
            }
        })
        .await??;
        assert_eq!(done.variable("discador_resultado"), Some(resultado));
        assert_eq!(done.hangup_cause(), Some("NORMAL_CLEARING"));
    }

    // An injected drop: the client reconnects (generation 2) and works again.
    sim.drop_connections();
    let mut state = client.state();
    tokio::time::timeout(WAIT, async {
        loop {
            if matches!(*state.borrow_and_update(), ConnState::Connected { generation } if generation >= 2) {
                return;
            }
            if state.changed().await.is_err() {
                return;
            }
        }
    })
    .await?;
    assert!(client.api("status").await?.contains("is ready"));

    client.shutdown().await;
    stop.cancel();
    let _ = server_task.await;
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn heartbeat_is_fired() -> Result<()> {
    let sim = start(SimConfig {
        heartbeat_secs: 1,
        ..config()
    })
    .await?;
    let mut c = Client::authed(sim.addr).await?;
    c.subscribe(EventFormat::Json, &["HEARTBEAT"]).await?;
    let hb = c.event(|e| e.name() == Some("HEARTBEAT")).await?;
    assert_eq!(hb.get("Event-Info"), Some("System Ready"));
    assert!(hb.get("Session-Count").is_some());
    sim.shutdown().await;
    Ok(())
}

/// The simulator's CHANNEL_HANGUP_COMPLETE carries every core, channel and caller-profile header
/// of a real one (tests/fixtures/esl/hangup_complete.body, captured from FreeSWITCH), in the same
/// relative order; only codec, other-leg and variable headers differ with the scenario.
#[tokio::test]
async fn hangup_complete_has_the_headers_of_a_real_one() -> Result<()> {
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/esl/hangup_complete.body"
    ))?;
    let real = Event::parse_plain(&format!("{}\n\n", raw.trim_end()))?;
    let sim = start(config()).await?;
    let mut c = Client::authed(sim.addr).await?;
    c.subscribe(EventFormat::Plain, &["CHANNEL_HANGUP_COMPLETE"])
        .await?;
    let uuid = Uuid::new_v4().to_string();
    c.api(&originate_cmd(&uuid, "600000006", "humano XML discador"))
        .await?;
    let ours = c
        .event(|e| e.name() == Some("CHANNEL_HANGUP_COMPLETE"))
        .await?;
    // Channel-Presence-ID exists only when `presence_id` is set (a registered user's call).
    assert_headers_like(&real, &ours, &["Channel-Presence-ID"]);
    for var in [
        "hangup_cause",
        "hangup_cause_q850",
        "duration",
        "billsec",
        "start_epoch",
        "answer_epoch",
        "end_epoch",
    ] {
        assert!(ours.variable(var).is_some(), "variable_{var} missing");
    }
    sim.shutdown().await;
    Ok(())
}

/// First frame of a captured fixture file.
fn fixture_frame(name: &str) -> Result<Frame> {
    use tokio_util::codec::Decoder;
    let path = format!("{}/tests/fixtures/esl/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut buf = bytes::BytesMut::from(&std::fs::read(path)?[..]);
    EslCodec::new()
        .decode(&mut buf)?
        .ok_or_else(|| anyhow!("no complete frame in {name}"))
}

/// Every header of `real` that is not scenario-specific is in `ours`, in the same relative order.
fn assert_headers_like(real: &Event, ours: &Event, scenario_specific: &[&str]) {
    let keep = |k: &&str| {
        !k.starts_with("variable_")
            && !k.starts_with("Other-")
            && !k.starts_with("Channel-Read-Codec")
            && !k.starts_with("Channel-Write-Codec")
            && !scenario_specific.contains(k)
    };
    let real_names: Vec<&str> = real.headers().map(|(k, _)| k).filter(keep).collect();
    let our_names: Vec<&str> = ours.headers().map(|(k, _)| k).filter(keep).collect();
    let missing: Vec<&&str> = real_names
        .iter()
        .filter(|n| !our_names.contains(n))
        .collect();
    assert!(missing.is_empty(), "{:?}: missing {missing:?}", real.name());
    let in_ours: Vec<&&str> = our_names
        .iter()
        .filter(|n| real_names.contains(n))
        .collect();
    let mut in_real: Vec<&&str> = Vec::new();
    for n in &real_names {
        if our_names.contains(n) && !in_real.contains(&n) {
            in_real.push(n);
        }
    }
    let mut ours_dedup: Vec<&&str> = Vec::new();
    for n in in_ours {
        if !ours_dedup.contains(&n) {
            ours_dedup.push(n);
        }
    }
    assert_eq!(ours_dedup, in_real, "{:?}: order differs", real.name());
}

/// The connect reply, an EXECUTE_COMPLETE and a BACKGROUND_JOB carry the headers of captured
/// FreeSWITCH ones (tests/fixtures/esl/), in the same order.
#[tokio::test]
async fn socket_frames_have_the_headers_of_real_ones() -> Result<()> {
    let (listener, sim, mut c) = with_socket(config(), &["BACKGROUND_JOB"]).await?;
    let uuid = Uuid::new_v4().to_string();
    let job = c
        .bgapi(&originate_cmd(&uuid, "600000006", "discador XML discador"))
        .await?;
    let mut s = accept(&listener).await?;

    let real_connect = fixture_frame("connect_reply.esl")?;
    let ours = s.cmd(Command::Connect).await?;
    assert_headers_like(
        &real_connect.headers_as_event(),
        &ours.headers_as_event(),
        &["Channel-Presence-ID"],
    );
    let j = job.to_string();
    let bg = c
        .event(|e| e.name() == Some("BACKGROUND_JOB") && e.job_uuid() == Some(j.as_str()))
        .await?;
    assert_headers_like(&fixture_frame("background_job_ok.esl")?.event()?, &bg, &[]);

    s.cmd(MyEvents::new()).await?;
    let done = execute(&mut s, "export", "dialed_extension=1000").await?;
    assert_headers_like(&fixture_frame("execute_complete.esl")?.event()?, &done, &[]);
    assert_eq!(done.variable("export_vars"), Some("dialed_extension"));
    assert_eq!(done.application_response(), Some("_none_"));
    s.cmd(SendMsg::hangup("NORMAL_CLEARING")?).await?;
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_subscription_only_sees_later_events() -> Result<()> {
    let sim = start(config()).await?;
    let mut c = Client::authed(sim.addr).await?;
    let early = Uuid::new_v4().to_string();
    c.api(&originate_cmd(&early, "600000002", "&park()"))
        .await?; // fails at once: 3 events
    c.subscribe(EventFormat::Plain, &["ALL"]).await?;
    let late = Uuid::new_v4().to_string();
    c.api(&originate_cmd(&late, "600000000", "&park()")).await?;
    let first = c.event(|e| e.name() == Some("CHANNEL_CREATE")).await?;
    assert_eq!(
        first.unique_id(),
        Some(late.as_str()),
        "an event from before `event` leaked"
    );
    sim.shutdown().await;
    Ok(())
}

/// Odd but well-framed commands get an answer, never a crash; the server keeps serving.
#[tokio::test]
async fn odd_commands_get_answers() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let sim = start(config()).await?;
    let mut c = Client::authed(sim.addr).await?;
    let odd: &[&str] = &[
        "api",
        "api originate",
        "api originate {",
        "api originate '",
        "api originate {a=b}[c=d]sofia/gateway/gw/ñ600000006 &park(",
        "api originate error/user_busy &park()",
        "api uuid_kill nope NOT_A_CAUSE",
        "api show",
        "api show nothing as json",
        "api hupall FOO var",
        "bgapi",
        "event",
        "event yaml ALL",
        "filter",
        "filter delete",
        "nixevent",
        "sendmsg",
        "sendmsg nope",
        "linger",
        "log",
        "\u{1F600} ?",
    ];
    for line in odd {
        c.framed
            .get_mut()
            .write_all(format!("{line}\n\n").as_bytes())
            .await?;
        let reply = c.reply().await?;
        assert!(
            matches!(
                reply.kind(),
                FrameKind::CommandReply | FrameKind::ApiResponse
            ),
            "{line}: {:?}",
            reply.kind()
        );
    }
    assert_eq!(
        c.api("originate error/user_busy &park()").await?,
        "-ERR USER_BUSY\n"
    );
    assert!(c.api("status").await?.contains("is ready"));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_mix_overrides_the_last_digit() -> Result<()> {
    let sim = start(SimConfig {
        mix: Some("ocupado=100".parse()?),
        ..config()
    })
    .await?;
    let mut c = Client::authed(sim.addr).await?;
    let uuid = Uuid::new_v4().to_string();
    // Ends in 6 (a human by the last-digit rule), busy by the mix.
    assert_eq!(
        c.api(&originate_cmd(&uuid, "600000006", "&park()")).await?,
        "-ERR USER_BUSY\n"
    );
    sim.shutdown().await;
    Ok(())
}

//! `hapwatch test-alert [--channel NAME]`: send a test notification through
//! each configured channel now and say what happened.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{json, Map};

use super::common::StoreArgs;
use crate::incidents::{Incident, Kind, Severity};
use crate::notify::{mail_domain, render, Item, Message};

#[derive(clap::Args, Debug)]
pub struct TestAlertArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this channel.
    #[arg(long)]
    pub channel: Option<String>,
}

pub fn run(args: TestAlertArgs) -> anyhow::Result<ExitCode> {
    let config = args.store.load()?;
    let chosen: Vec<usize> = (0..config.channel.len())
        .filter(|&i| {
            args.channel
                .as_ref()
                .is_none_or(|n| &config.channel[i].name == n)
        })
        .collect();
    if chosen.is_empty() {
        anyhow::bail!(match &args.channel {
            Some(n) => format!("no channel named {n:?} in the config"),
            None => "no [[channel]] in the config: notifications go to the log only".to_owned(),
        });
    }
    let now = crate::timezone::now_ms();
    let mut detail = Map::new();
    detail.insert(
        "reason".into(),
        json!("test notification from hapwatch test-alert"),
    );
    let incident = Incident {
        id: 0,
        key: crate::incidents::IncidentKey::test_alert(),
        kind: Kind::ServerDown,
        severity: Severity::Critical,
        host: "hapwatch-test".into(),
        backend: Some("be_test".into()),
        server: Some("test1".into()),
        opened_ms: now,
        reminder_ms: None,
        ack: None,
        summary: "server be_test/test1 is DOWN (a test)".into(),
        detail,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for i in chosen {
        let ch = &config.channel[i];
        let item = Item {
            channel: ch.name.clone(),
            incident: incident.clone(),
            resolved: None,
        };
        let payload = render(
            &ch.route(),
            &Message {
                items: std::slice::from_ref(&item),
                message_id: format!("<hapwatch-test-{now}@{}>", mail_domain(ch)),
                parents: Vec::new(),
                zone: &config.parse.timezone,
            },
        );
        match rt.block_on(crate::delivery::send_now(ch, &payload)) {
            Ok(()) => writeln!(out, "{}: sent", ch.name)?,
            Err(e) => {
                failed += 1;
                let how = if e.is_permanent() {
                    "FAILED (permanent: retrying will not help)"
                } else {
                    "FAILED (transient: the daemon would retry)"
                };
                writeln!(out, "{}: {how}: {e}", ch.name)?;
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

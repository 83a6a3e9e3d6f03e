//! The disaster-recovery dashboard at `/tandem/`: per workspace and region the role, epoch,
//! lease, replication and archive lag, the last failover (its RTO and what was kept as
//! diverged), the backup window, retention and purge protection, and a lag chart over the
//! last minutes. Plain server-rendered HTML; a few lines of script reload the live part every
//! two seconds from `/tandem/live`.
//!
//! A sampler task gathers everything once a second (this region's status, the other
//! region's over HTTP, retention from the store) and every 30 s the backup window from the
//! archive, so that rendering a page reads memory only and takes well under a millisecond.
//!
//! Architecture invariant: the dashboard only reads. Its buttons show the commands that
//! change things (`tandem failover`, `tandem restore`, ...); they change nothing themselves.

use crate::http::AppState;
use crate::ui::html_escape as esc;
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Lag samples kept per workspace: ten minutes at one a second.
const HISTORY: usize = 600;

#[derive(Default)]
struct Snapshot {
    taken_ms: u64,
    /// This server's name (a region's, or "server" for a single server).
    me: String,
    /// Per region: its status answer (None when it did not answer).
    regions: Vec<(String, String, Option<Json>)>,
    retention: BTreeMap<String, Json>,
    /// Per workspace: the archive's restorable window, when there is an archive.
    backup: BTreeMap<String, Json>,
    backup_error: Option<String>,
    /// Per workspace: (unix ms, replication lag in events, archive lag in events).
    history: HashMap<String, VecDeque<(u64, u64, u64)>>,
    /// Per workspace: the failovers seen since this server started (by epoch, newest last),
    /// as each region reported them, with the diverged events each region keeps.
    failovers: HashMap<String, BTreeMap<u64, Json>>,
}

/// Failovers listed per workspace.
const FAILOVERS: usize = 10;

/// The dashboard's state, shared by the sampler and the page handlers.
#[derive(Clone, Default)]
pub struct Dashboard {
    snap: Arc<RwLock<Snapshot>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Dashboard {
    /// Starts the sampler for the server `state` describes.
    pub fn spawn(state: &AppState, archive: Option<String>) -> Dashboard {
        let d = Dashboard::default();
        let (dash, state) = (d.clone(), state.clone());
        tokio::spawn(async move {
            let archive = archive.and_then(|url| crate::backup::Archive::open(&url).ok());
            let mut tick: u64 = 0;
            loop {
                dash.sample(&state, archive.as_ref(), tick).await;
                tick += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        d
    }

    async fn sample(&self, state: &AppState, archive: Option<&crate::backup::Archive>, tick: u64) {
        let store = state.store.clone();
        let mut regions = Vec::new();
        let me;
        match &state.region {
            Some(region) => {
                me = region.name.clone();
                let (r, s) = (region.clone(), store.clone());
                let own = tokio::task::spawn_blocking(move || r.status(&s))
                    .await
                    .unwrap_or_default();
                for r in &region.deployment.regions {
                    if r.name == region.name {
                        regions.push((
                            r.name.clone(),
                            r.url.clone(),
                            Some(json!({ "region": r.name, "workspaces": own })),
                        ));
                        continue;
                    }
                    let v = async {
                        region
                            .internal()
                            .get(format!("{}/api/tandem/v1/status", r.url))
                            .timeout(Duration::from_millis(700))
                            .send()
                            .await
                            .ok()?
                            .json::<Json>()
                            .await
                            .ok()
                    }
                    .await;
                    regions.push((r.name.clone(), r.url.clone(), v));
                }
            }
            None => {
                me = "server".to_owned();
                let s = store.clone();
                let list = tokio::task::spawn_blocking(move || {
                    s.read(|tx| crate::store::queries::workspaces(tx))
                        .unwrap_or_default()
                })
                .await
                .unwrap_or_default();
                let ws: Vec<Json> = list
                    .iter()
                    .map(|w| json!({ "workspace": w["name"], "role": "single server", "mode": "single server" }))
                    .collect();
                regions.push((
                    "server".into(),
                    String::new(),
                    Some(json!({ "workspaces": ws })),
                ));
            }
        }
        let names: Vec<String> = regions
            .iter()
            .filter_map(|(_, _, v)| v.as_ref())
            .flat_map(|v| v["workspaces"].as_array().cloned().unwrap_or_default())
            .filter_map(|w| w["workspace"].as_str().map(str::to_owned))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut retention = BTreeMap::new();
        {
            let (s, n) = (store.clone(), names.clone());
            let got = tokio::task::spawn_blocking(move || {
                n.into_iter()
                    .filter_map(|w| crate::retention::get(&s, &w).ok().map(|r| (w, json!(r))))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            retention.extend(got);
        }
        // The backup window reads the archive (its newest segment, and the oldest part only
        // when it changed): every 30 s, not every second.
        let (mut backup, mut backup_error) = {
            let s = self.snap.read().unwrap_or_else(|e| e.into_inner());
            (s.backup.clone(), s.backup_error.clone())
        };
        // Every 30 s, and every 5 s while a workspace's window is still unknown or empty.
        let unknown = names
            .iter()
            .any(|w| backup.get(w).is_none_or(|b| b["latest_ms"].is_null()));
        let due = tick.is_multiple_of(30) || (unknown && tick.is_multiple_of(5));
        if let (Some(a), true) = (archive, due) {
            backup_error = None;
            for w in &names {
                // The snapshot's instant from last time, so that it is not read again.
                let known = backup
                    .get(w)
                    .and_then(|b| Some((b["snapshot_seq"].as_u64()?, b["earliest_ms"].as_u64()?)));
                match a.window(w, known).await {
                    Ok(win) => {
                        backup.insert(
                            w.clone(),
                            json!({ "earliest_ms": win.earliest_ms, "latest_ms": win.latest_ms, "events": win.head_seq, "snapshot_seq": win.snapshot.map(|s| s.0) }),
                        );
                    }
                    Err(e) => backup_error = Some(e.to_string()),
                }
            }
        }
        let now = now_ms();
        let mut snap = self.snap.write().unwrap_or_else(|e| e.into_inner());
        for w in &names {
            let (mut repl, mut arch) = (0u64, 0u64);
            for s in entries(&regions, w) {
                repl = repl.max(s["replication_lag_events"].as_u64().unwrap_or(0));
                arch = arch.max(s["archive_lag_events"].as_u64().unwrap_or(0));
            }
            let seen = snap.failovers.entry(w.clone()).or_default();
            for s in entries(&regions, w) {
                let f = &s["last_failover"];
                if let Some(epoch) = f["epoch"].as_u64() {
                    // The new leader's own record (with its RTO) wins over the old one's.
                    if f["rto_ms"].is_u64() || !seen.contains_key(&epoch) {
                        seen.insert(epoch, f.clone());
                    }
                }
            }
            while seen.len() > FAILOVERS {
                seen.pop_first();
            }
            let h = snap.history.entry(w.clone()).or_default();
            h.push_back((now, repl, arch));
            while h.len() > HISTORY {
                h.pop_front();
            }
        }
        snap.taken_ms = now;
        snap.me = me;
        snap.regions = regions;
        snap.retention = retention;
        snap.backup = backup;
        snap.backup_error = backup_error;
    }

    /// `/tandem/`: the whole page.
    pub fn page(&self) -> String {
        let live = self.live();
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <link rel=\"icon\" href=\"data:,\">\
             <title>tandem: disaster recovery</title><style>{STYLE}</style></head><body>\
             <header><h1>tandem <span>disaster recovery</span></h1>\
             <nav><a href=\"../\">MLflow UI</a></nav></header>\
             <main id=\"live\">{live}</main><script>{SCRIPT}</script></body></html>"
        )
    }

    /// `/tandem/live`: the part of the page that changes.
    pub fn live(&self) -> String {
        let s = self.snap.read().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        if s.taken_ms == 0 {
            return "<p>Gathering the first sample...</p>".into();
        }
        let _ = write!(
            out,
            "<p class=\"meta\">Served by <b>{}</b> &middot; sampled {} &middot; refreshes every 2 s</p>",
            esc(&s.me),
            crate::backup::iso(s.taken_ms)
        );
        // Regions that did not answer.
        for (name, url, v) in &s.regions {
            if v.is_none() {
                let _ = write!(
                    out,
                    "<p class=\"down\">Region <b>{}</b> ({}) does not answer.</p>",
                    esc(name),
                    esc(url)
                );
            }
        }
        let mut names: Vec<String> = s.retention.keys().cloned().collect();
        for (_, _, v) in &s.regions {
            for w in v
                .as_ref()
                .and_then(|v| v["workspaces"].as_array())
                .into_iter()
                .flatten()
            {
                if let Some(n) = w["workspace"].as_str() {
                    if !names.iter().any(|x| x == n) {
                        names.push(n.to_owned());
                    }
                }
            }
        }
        names.sort();
        for ws in &names {
            let _ = write!(out, "<section><h2>{}</h2>", esc(ws));
            out.push_str("<table><thead><tr><th>region</th><th>role</th><th>mode</th><th>epoch</th><th>lease</th><th>write ack</th><th>head</th><th>replication lag</th><th>archive lag</th><th>diverged kept</th><th>last failover</th></tr></thead><tbody>");
            let mut leader = None;
            for (name, _, v) in &s.regions {
                let Some(w) = v
                    .as_ref()
                    .and_then(|v| v["workspaces"].as_array())
                    .and_then(|a| a.iter().find(|w| w["workspace"] == ws.as_str()))
                else {
                    let _ = write!(
                        out,
                        "<tr><td>{}</td><td colspan=\"10\" class=\"down\">no answer</td></tr>",
                        esc(name)
                    );
                    continue;
                };
                let role = w["role"].as_str().unwrap_or("?");
                if role == "leader" {
                    leader = Some(name.clone());
                }
                let lag = lag_text(w, "replication");
                let arch = lag_text(w, "archive");
                let failover = match w.get("last_failover").filter(|f| !f.is_null()) {
                    Some(f) => failover_text(f),
                    None => "&ndash;".into(),
                };
                let _ = write!(
                    out,
                    "<tr class=\"{role_class}\"><td>{}</td><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{lag}</td><td>{arch}</td><td>{}</td><td>{failover}</td></tr>",
                    esc(name),
                    esc(role),
                    esc(w["mode"].as_str().unwrap_or("")),
                    w["epoch"].as_u64().map(|e| e.to_string()).unwrap_or_else(|| "&ndash;".into()),
                    esc(w["lease"].as_str().unwrap_or("")),
                    esc(w["write_ack"].as_str().unwrap_or("")),
                    w["head_seq"].as_u64().map(|e| e.to_string()).unwrap_or_else(|| "&ndash;".into()),
                    w["diverged_pending"].as_u64().unwrap_or(0),
                    role_class = if role == "leader" { "leader" } else { "other" },
                );
            }
            out.push_str("</tbody></table><div class=\"facts\">");
            let _ = write!(
                out,
                "<p>Leader: <b class=\"leader-name\">{}</b></p>",
                leader
                    .as_deref()
                    .map(esc)
                    .unwrap_or_else(|| "none known".into())
            );
            match s.retention.get(ws) {
                Some(r) => {
                    let _ = write!(
                        out,
                        "<p>Retention: deleted objects stay restorable for <b>{}</b> days; purge protection <b>{}</b></p>",
                        r["days"],
                        if r["purge_protection"] == true { "on" } else { "off" }
                    );
                }
                None => out.push_str("<p>Retention: not known here</p>"),
            }
            match s.backup.get(ws) {
                Some(b) => {
                    let when = |k: &str| {
                        b[k].as_u64()
                            .map(crate::backup::iso)
                            .unwrap_or_else(|| "&ndash;".into())
                    };
                    let _ = write!(
                        out,
                        "<p>Backup window: restorable from <b>{}</b> to <b>{}</b> ({} events archived)</p>",
                        when("earliest_ms"),
                        when("latest_ms"),
                        b["events"]
                    );
                }
                None if s.backup_error.is_some() => {
                    let _ = write!(
                        out,
                        "<p class=\"down\">Backup window: the archive could not be read: {}</p>",
                        esc(s.backup_error.as_deref().unwrap_or(""))
                    );
                }
                None => {
                    out.push_str("<p>Backup window: no archive configured, or not read yet</p>")
                }
            }
            out.push_str("</div>");
            if let Some(h) = s.history.get(ws) {
                out.push_str(&chart(h));
            }
            if let Some(list) = s.failovers.get(ws).filter(|l| !l.is_empty()) {
                out.push_str(
                    "<details open><summary>Failovers seen</summary><ul class=\"failovers\">",
                );
                for f in list.values().rev() {
                    let _ = write!(out, "<li>{}</li>", failover_text(f));
                }
                out.push_str("</ul></details>");
            }
            let other = s
                .regions
                .iter()
                .map(|r| r.0.clone())
                .find(|r| Some(r) != leader.as_ref())
                .unwrap_or_else(|| "REGION".into());
            out.push_str("<div class=\"commands\">");
            for (label, cmd) in [
                ("status", "tandem status".to_owned()),
                (
                    "switch over",
                    format!("tandem failover --workspace {ws} --to {other}"),
                ),
                (
                    "force failover",
                    format!("tandem failover --workspace {ws} --to {other} --force"),
                ),
                ("diverged events", "tandem diverged list".to_owned()),
                ("backup window", "tandem backup list".to_owned()),
                (
                    "restore to an instant",
                    format!("tandem restore --workspace {ws} --at 2026-01-01T00:00:00Z --into NEW"),
                ),
            ] {
                let _ = write!(
                    out,
                    "<button type=\"button\" data-cmd=\"{}\" title=\"copy: {}\">{}</button>",
                    esc(&cmd),
                    esc(&cmd),
                    esc(label)
                );
            }
            out.push_str("</div></section>");
        }
        out
    }
}

/// What each region that answered says of workspace `ws`.
fn entries<'a>(
    regions: &'a [(String, String, Option<Json>)],
    ws: &'a str,
) -> impl Iterator<Item = &'a Json> + 'a {
    regions
        .iter()
        .filter_map(|r| r.2.as_ref())
        .flat_map(|v| v["workspaces"].as_array().into_iter().flatten())
        .filter(move |s| s["workspace"] == ws)
}

/// A failover record of `tandem status`, in words.
fn failover_text(f: &Json) -> String {
    format!(
        "epoch {} to {} ({}) at {}{}{}",
        f["epoch"],
        esc(f["to"].as_str().unwrap_or("")),
        esc(f["reason"].as_str().unwrap_or("")),
        crate::backup::iso(f["at_ms"].as_u64().unwrap_or(0)),
        f["rto_ms"]
            .as_u64()
            .map(|r| format!(", RTO {:.1} s", r as f64 / 1000.0))
            .unwrap_or_default(),
        match f["events_possibly_lost"].as_u64().unwrap_or(0) {
            0 => String::new(),
            n => format!(", {n} events possibly lost (kept as diverged by the old leader)"),
        }
    )
}

/// `{kind}_lag_events` and `{kind}_lag_ms` of a status entry, as a table cell.
fn lag_text(w: &Json, kind: &str) -> String {
    match (
        w[format!("{kind}_lag_events")].as_u64(),
        w[format!("{kind}_lag_ms")].as_u64(),
    ) {
        (Some(e), Some(ms)) => format!("{e} events, {ms} ms"),
        (Some(e), None) => format!("{e} events"),
        _ => "&ndash;".into(),
    }
}

/// Replication and archive lag over the last minutes, as an inline SVG.
fn chart(h: &VecDeque<(u64, u64, u64)>) -> String {
    let (w, ht) = (600.0, 80.0);
    let max = h.iter().map(|s| s.1.max(s.2)).max().unwrap_or(0).max(1) as f64;
    let n = h.len().max(2) as f64 - 1.0;
    let line = |pick: fn(&(u64, u64, u64)) -> u64| {
        h.iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 / n * w,
                    ht - pick(s) as f64 / max * (ht - 4.0) - 2.0
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let minutes = h.len() as f64 / 60.0;
    format!(
        "<figure><svg viewBox=\"0 0 {w} {ht}\" width=\"{w}\" height=\"{ht}\" role=\"img\" aria-label=\"lag chart\">\
         <rect width=\"{w}\" height=\"{ht}\" class=\"bg\"/>\
         <polyline class=\"repl\" points=\"{}\"/><polyline class=\"arch\" points=\"{}\"/></svg>\
         <figcaption>Lag over the last {minutes:.1} min (peak {max:.0} events): \
         <span class=\"repl\">replication</span>, <span class=\"arch\">archive</span></figcaption></figure>",
        line(|s| s.1),
        line(|s| s.2),
    )
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}\
header{display:flex;justify-content:space-between;align-items:center;padding:10px 24px;background:#0b3a53;color:#fff}\
header h1{font-size:18px;margin:0}header h1 span{font-weight:400;opacity:.8}header a{color:#cfe8ff}\
main{padding:12px 24px}section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px;margin:12px 0}\
h2{margin:0 0 8px;font-size:16px}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceff3;font-size:13px}\
tr.leader td{background:#eaf6ec}.down{color:#b3261e}.meta{color:#5c6670;margin:0}\
.facts p{margin:4px 0}figure{margin:8px 0}svg .bg{fill:#fafbfc;stroke:#dde1e6}\
polyline{fill:none;stroke-width:1.5}polyline.repl{stroke:#1f77b4}polyline.arch{stroke:#ff7f0e}\
span.repl{color:#1f77b4}span.arch{color:#ff7f0e}figcaption{font-size:12px;color:#5c6670}\
.commands button{margin:4px 6px 0 0;padding:4px 10px;border:1px solid #9aa5b1;background:#fff;border-radius:4px;cursor:pointer}\
.commands button.copied{background:#eaf6ec}details{margin:6px 0}ul.failovers{margin:4px 0;padding-left:20px}";

/// Reloads the live part every two seconds; the buttons copy their command.
const SCRIPT: &str = "(function(){\
var main=document.getElementById('live');\
function refresh(){fetch('live',{cache:'no-store',credentials:'same-origin'}).then(function(r){return r.ok?r.text():null}).then(function(t){if(t!==null){main.innerHTML=t}}).catch(function(){})}\
setInterval(refresh,2000);\
main.addEventListener('click',function(e){var b=e.target.closest('button[data-cmd]');if(!b){return}\
var c=b.getAttribute('data-cmd');if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(c).catch(function(){})}\
b.classList.add('copied');b.textContent='copied';setTimeout(refresh,1500)});\
})();";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_the_leader_lags_and_failover() {
        let d = Dashboard::default();
        {
            let mut s = d.snap.write().unwrap();
            s.taken_ms = 1_700_000_000_000;
            s.me = "east".into();
            s.regions = vec![
                (
                    "east".into(),
                    "http://e".into(),
                    Some(
                        json!({"workspaces": [{"workspace": "default", "role": "leader", "mode": "hot/warm", "epoch": 3, "lease": "held", "write_ack": "sync", "head_seq": 10, "archive_lag_events": 2, "archive_lag_ms": 40, "diverged_pending": 0, "last_failover": {"epoch": 3, "to": "east", "reason": "failover", "at_ms": 1_700_000_000_000u64, "events_possibly_lost": 0, "rto_ms": 2500}}]}),
                    ),
                ),
                ("west".into(), "http://w".into(), None),
            ];
            s.retention.insert(
                "default".into(),
                json!({"days": 30, "purge_protection": true}),
            );
            s.failovers.insert(
                "default".into(),
                BTreeMap::from([(2, json!({"epoch": 2, "to": "west", "reason": "switchover", "at_ms": 1u64, "events_possibly_lost": 3}))]),
            );
            s.history.insert(
                "default".into(),
                VecDeque::from(vec![(1, 0, 2), (2, 5, 1), (3, 1, 0)]),
            );
        }
        let page = d.page();
        for want in [
            "leader-name\">east",
            "RTO 2.5 s",
            "Region <b>west</b> (http://w) does not answer",
            "<b>30</b> days; purge protection <b>on</b>",
            "tandem failover --workspace default --to west",
            "<polyline class=\"repl\"",
            "Failovers seen",
            "3 events possibly lost (kept as diverged",
        ] {
            assert!(page.contains(want), "{want} missing from {page}");
        }
        // Names from the outside are escaped.
        assert!(!esc("<script>").contains('<'));
    }
}

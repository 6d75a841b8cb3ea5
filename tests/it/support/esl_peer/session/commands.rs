//! The session commands with more than a one-line reply: auth, event, nixevent, filter, sendmsg,
//! bgapi.

use std::sync::Arc;

use super::super::exec::Exec;
use super::super::wire::{self, Command};
use super::Session;

impl Session {
    pub(super) async fn handle_auth(&mut self, word: &str, rest: &str) -> std::io::Result<bool> {
        if word != "auth" {
            return self.reply("-ERR command not found").await;
        }
        if rest == self.password {
            self.authed = true;
            return self.reply("+OK accepted").await;
        }
        self.reply("-ERR invalid").await?;
        self.write(&wire::goodbye_notice(None), "disconnect")
            .await?;
        Ok(false)
    }

    pub(super) async fn subscribe(&mut self, rest: &str) -> std::io::Result<bool> {
        let mut words = rest.split_whitespace().peekable();
        let fmt = match words.peek() {
            Some(&f) if ["plain", "json", "xml"].contains(&f) => {
                words.next();
                f.to_owned()
            }
            _ => "plain".to_owned(),
        };
        let (mut custom, mut any) = (false, false);
        for w in words {
            let w = w.trim_start_matches("SWITCH_EVENT_");
            match w.to_ascii_uppercase().as_str() {
                _ if custom => drop(self.customs.insert(w.to_owned())),
                "ALL" => {
                    self.all = true;
                    self.nixed.clear();
                }
                "CUSTOM" => custom = true,
                up => drop(self.names.insert(up.to_owned())),
            }
            any = true;
        }
        if !any {
            return self.reply("-ERR no keywords supplied").await;
        }
        self.json = fmt == "json";
        self.reply(&format!("+OK event listener enabled {fmt}"))
            .await
    }

    /// `nixevent` as mod_event_socket does it: a type leaves the event list; after `ALL` the
    /// list becomes every type but the ones nixed; `ALL` empties it; words after `CUSTOM` are
    /// subclasses to drop.
    pub(super) async fn nixevent(&mut self, rest: &str) -> std::io::Result<bool> {
        let (mut custom, mut any) = (false, false);
        for w in rest.split_whitespace() {
            let w = w.trim_start_matches("SWITCH_EVENT_");
            match w.to_ascii_uppercase().as_str() {
                _ if custom => drop(self.customs.remove(w)),
                "ALL" => {
                    self.all = false;
                    self.nixed.clear();
                    self.names.clear();
                }
                "CUSTOM" => custom = true,
                up => {
                    if self.all {
                        self.nixed.insert(up.to_owned());
                    }
                    self.names.remove(up);
                }
            }
            any = true;
        }
        if !any {
            return self.reply("-ERR no keywords supplied").await;
        }
        self.reply("+OK events nixed").await
    }

    pub(super) async fn filter(&mut self, rest: &str) -> std::io::Result<bool> {
        let rest = rest.strip_prefix("add ").unwrap_or(rest);
        if let Some(del) = rest.strip_prefix("delete ") {
            let (h, v) = del.split_once(' ').unwrap_or((del, ""));
            if h == "all" {
                self.filters.clear();
            } else {
                self.filters
                    .retain(|(fh, fv)| !(fh == h && (v.is_empty() || fv == v)));
            }
            return self.reply(&format!("+OK filter deleted. [{h}][{v}]")).await;
        }
        let Some((h, v)) = rest.split_once(' ') else {
            return self.reply("-ERR invalid syntax").await;
        };
        self.filters.push((h.to_owned(), v.to_owned()));
        self.reply(&format!("+OK filter added. [{h}]=[{v}]")).await
    }

    pub(super) async fn sendmsg(&mut self, target: &str, cmd: &Command) -> std::io::Result<bool> {
        let uuid = if target.is_empty() {
            self.own().map(str::to_owned)
        } else {
            Some(target.to_owned())
        };
        let exec = match (&uuid, &self.ctl) {
            (Some(u), Some(c)) if *u == c.uuid => Some(c.exec.clone()),
            _ => None,
        };
        let exists = uuid
            .as_deref()
            .is_some_and(|u| self.sw.lock().channels.contains_key(u));
        if !exists {
            return self
                .reply(&format!(
                    "-ERR invalid session id [{}]",
                    uuid.unwrap_or_default()
                ))
                .await;
        }
        let msg = match cmd.header("call-command") {
            Some("execute") => cmd.header("execute-app-name").map(|name| Exec::App {
                name: name.to_owned(),
                arg: cmd
                    .header("execute-app-arg")
                    .map(str::to_owned)
                    .or_else(|| cmd.body.clone()),
                event_uuid: cmd.header("Event-UUID").map(str::to_owned),
            }),
            Some("hangup") => Some(Exec::Hangup(
                cmd.header("hangup-cause")
                    .unwrap_or("NORMAL_CLEARING")
                    .to_owned(),
            )),
            _ => None,
        };
        match (msg, exec, uuid) {
            // hangup is parsed at once, even while an app (playback, sleep, park) runs
            (Some(Exec::Hangup(c)), _, Some(u)) => {
                let sw = Arc::clone(&self.sw);
                sw.lock().app_hangups.insert(u.clone());
                self.sw.tracker.spawn(async move {
                    sw.tick().await;
                    sw.hangup(&u, &c);
                });
            }
            (Some(m), Some(tx), _) => drop(tx.try_send(m)),
            _ => {}
        }
        self.reply("+OK").await
    }

    pub(super) async fn bgapi(&mut self, rest: &str, cmd: &Command) -> std::io::Result<bool> {
        let job = cmd
            .header("Job-UUID")
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        self.write(&wire::bgapi_reply(&job), "+OK Job-UUID").await?;
        let (sw, line, owner) = (
            Arc::clone(&self.sw),
            rest.to_owned(),
            self.own().map(str::to_owned),
        );
        self.sw.tracker.spawn(async move {
            let body = super::super::api::run(&sw, &line).await;
            let (c, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let mut h = vec![
                ("Job-UUID".to_owned(), job),
                ("Job-Command".to_owned(), c.to_owned()),
                ("Job-Command-Arg".to_owned(), arg.to_owned()),
            ];
            if let Some(o) = owner {
                h.push(("Job-Owner-UUID".to_owned(), o));
            }
            sw.tick().await;
            let ev = sw.plain_event("BACKGROUND_JOB", None, h, Some(body));
            sw.fire(ev);
        });
        Ok(true)
    }
}

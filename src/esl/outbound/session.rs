//! Commands on one outbound session's own channel.

use std::time::Duration;

use freeswitch_esl_tokio::{EslClient, EslEvent, EslResponse};

use crate::esl::HangupCause;
use crate::esl::command::{DialString, Extension, MediaPath, Name, VarSet};
use crate::esl::error::EslError;
use crate::ids::{ChannelId, ExecId, LegId};

/// Sends commands to the channel of one outbound session. Cheap to clone.
///
/// Every method is bounded by the session's command timeout. `execute`-style methods return once
/// FreeSWITCH *queued* the application (async mode): completion arrives as
/// [`CallEvent::ExecuteCompleted`](crate::esl::CallEvent::ExecuteCompleted) with the returned
/// [`ExecId`]. Each carries `event-lock: true`, so queued applications run in order.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    client: EslClient,
    channel: ChannelId,
    timeout: Duration,
}

impl SessionHandle {
    pub(super) fn new(client: EslClient, channel: ChannelId, timeout: Duration) -> Self {
        Self {
            client,
            channel,
            timeout,
        }
    }

    /// The controlled channel.
    pub fn channel(&self) -> &ChannelId {
        &self.channel
    }

    /// Answers the channel.
    pub async fn answer(&self) -> Result<ExecId, EslError> {
        self.execute("answer", None).await
    }

    /// Signals ringing to the caller (`ring_ready`, SIP 180) without answering.
    pub async fn ring_ready(&self) -> Result<ExecId, EslError> {
        self.execute("ring_ready", None).await
    }

    /// Sets several channel variables with one `multiset`.
    pub async fn set_vars(&self, vars: &VarSet) -> Result<ExecId, EslError> {
        self.execute("multiset", Some(&vars.multiset_arg())).await
    }

    /// Runs `bridge` under the caller-chosen `exec` id (known before the reply, so the
    /// completion can never be missed).
    pub async fn bridge(&self, exec: ExecId, dial: &DialString) -> Result<ExecId, EslError> {
        self.execute_as(exec, "bridge", Some(&dial.to_string()))
            .await
    }

    /// Plays a file or tone stream.
    pub async fn playback(&self, path: &MediaPath) -> Result<ExecId, EslError> {
        self.execute("playback", Some(path.as_str())).await
    }

    /// Hangs the channel up with `cause`.
    pub async fn hangup(&self, cause: HangupCause) -> Result<ExecId, EslError> {
        self.execute("hangup", Some(cause.as_ref())).await
    }

    /// Transfers the channel to `dest` in `dialplan`/`context` (it leaves the socket's control;
    /// expect [`CallEvent::Transferred`](crate::esl::CallEvent::Transferred)).
    pub async fn transfer(
        &self,
        dest: &Extension,
        dialplan: &Name,
        context: &Name,
    ) -> Result<ExecId, EslError> {
        self.execute("transfer", Some(&format!("{dest} {dialplan} {context}")))
            .await
    }

    /// Starts recording this channel at once (`api uuid_record <uuid> start <path>`), also in the
    /// middle of a bridge: an `execute` of `record_session` would queue behind the running
    /// `bridge` app. d_record_during_bridge.txt: RECORD_START follows within one 20 ms tick.
    pub async fn record_start(&self, path: &MediaPath) -> Result<(), EslError> {
        let args = format!("{} start {}", self.channel, path.as_str());
        self.api("uuid_record", &args).await
    }

    /// Ends another leg at once (`api uuid_kill`), e.g. an agent leg still ringing. Runs inline on
    /// this socket, which `uuid_kill` keeps short.
    pub async fn kill_leg(&self, leg: &LegId, cause: HangupCause) -> Result<(), EslError> {
        self.api("uuid_kill", &format!("{leg} {cause}")).await
    }

    /// `api <command> <args>` inline on this socket (for short commands only); `-ERR` is an error.
    async fn api(&self, command: &'static str, args: &str) -> Result<(), EslError> {
        let reply = self
            .client
            .api(&format!("{command} {args}"))
            .await
            .map_err(|e| EslError::from_crate(command, self.timeout, e))?;
        reply
            .api_result()
            .map(|_| ())
            .map_err(|e| EslError::from_crate(command, self.timeout, e))
    }

    /// Sends `exit`: FreeSWITCH answers `+OK bye` and closes. The call is not hung up by it: a
    /// running bridge goes on, a caller not in a bridge continues the dialplan after `socket`.
    /// The session also does this by itself after hang-up.
    pub async fn exit(&self) -> Result<(), EslError> {
        self.client
            .exit()
            .await
            .and_then(EslResponse::check)
            .map_err(|e| EslError::from_crate("exit", self.timeout, e))
    }

    async fn execute(&self, app: &'static str, arg: Option<&str>) -> Result<ExecId, EslError> {
        self.execute_as(ExecId::random(), app, arg).await
    }

    async fn execute_as(
        &self,
        exec: ExecId,
        app: &'static str,
        arg: Option<&str>,
    ) -> Result<ExecId, EslError> {
        let mut msg = EslEvent::new();
        msg.set_header("call-command", "execute");
        msg.set_header("execute-app-name", app);
        if let Some(arg) = arg {
            msg.set_header("execute-app-arg", arg);
        }
        msg.set_header("Event-UUID", exec.as_str());
        msg.set_header("event-lock", "true");
        self.client
            .sendmsg(None, msg)
            .await
            .and_then(EslResponse::check)
            .map_err(|e| EslError::from_crate(app, self.timeout, e))?;
        Ok(exec)
    }
}

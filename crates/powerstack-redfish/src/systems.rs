//! Computer systems: their power state and the resets the BMC allows, and `ComputerSystem.Reset`
//! sent once (`send_reset`). The types and the parsing of a system's document are pure.

use std::fmt;
use std::str::FromStr;

use futures_util::future::join_all;
use hyper::Method;
use serde_json::{Value, json};

use crate::client::{Answer, Bmc};
use crate::discover::SERVICE_ROOT;
use crate::error::{Error, ParseError};
use crate::parse;

/// `PowerState` of a computer system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerState {
    /// On.
    On,
    /// Off.
    Off,
    /// Powering on.
    PoweringOn,
    /// Powering off.
    PoweringOff,
    /// Paused.
    Paused,
    /// A state the schema does not name.
    Other(String),
}

impl PowerState {
    /// The state named `text`.
    pub fn parse(text: &str) -> PowerState {
        match text {
            "On" => PowerState::On,
            "Off" => PowerState::Off,
            "PoweringOn" => PowerState::PoweringOn,
            "PoweringOff" => PowerState::PoweringOff,
            "Paused" => PowerState::Paused,
            other => PowerState::Other(other.to_string()),
        }
    }

    /// Its Redfish name.
    pub fn as_str(&self) -> &str {
        match self {
            PowerState::On => "On",
            PowerState::Off => "Off",
            PowerState::PoweringOn => "PoweringOn",
            PowerState::PoweringOff => "PoweringOff",
            PowerState::Paused => "Paused",
            PowerState::Other(other) => other,
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `ResetType` of `ComputerSystem.Reset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetType {
    /// Turn on.
    On,
    /// Turn off now.
    ForceOff,
    /// Shut down the OS, then off.
    GracefulShutdown,
    /// Restart the OS.
    GracefulRestart,
    /// Restart now.
    ForceRestart,
    /// Off, then on.
    PowerCycle,
    /// A non-maskable interrupt.
    Nmi,
    /// Press the power button.
    PushPowerButton,
    /// Turn on now.
    ForceOn,
    /// A value the schema does not name (HPE Cray EX lists `Off`).
    Other(String),
}

const RESET_TYPES: [ResetType; 9] = [
    ResetType::On,
    ResetType::ForceOff,
    ResetType::GracefulShutdown,
    ResetType::GracefulRestart,
    ResetType::ForceRestart,
    ResetType::PowerCycle,
    ResetType::Nmi,
    ResetType::PushPowerButton,
    ResetType::ForceOn,
];

impl ResetType {
    /// The reset type named `text`.
    pub fn parse(text: &str) -> ResetType {
        RESET_TYPES
            .iter()
            .find(|r| r.as_str() == text)
            .cloned()
            .unwrap_or_else(|| ResetType::Other(text.to_string()))
    }

    /// Its Redfish name.
    pub fn as_str(&self) -> &str {
        match self {
            ResetType::On => "On",
            ResetType::ForceOff => "ForceOff",
            ResetType::GracefulShutdown => "GracefulShutdown",
            ResetType::GracefulRestart => "GracefulRestart",
            ResetType::ForceRestart => "ForceRestart",
            ResetType::PowerCycle => "PowerCycle",
            ResetType::Nmi => "Nmi",
            ResetType::PushPowerButton => "PushPowerButton",
            ResetType::ForceOn => "ForceOn",
            ResetType::Other(other) => other,
        }
    }
}

impl fmt::Display for ResetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A power transition: a reset, then its confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Turn on; confirmed by `On`.
    On,
    /// Turn off now; confirmed by `Off`.
    ForceOff,
    /// Shut down, then off; confirmed by `Off`. Escalates to `ForceOff`.
    GracefulShutdown,
    /// Restart the OS; confirmed by leaving `On` or the BMC's task completing. Escalates to
    /// `ForceRestart`.
    GracefulRestart,
    /// Restart now; confirmed as a restart.
    ForceRestart,
    /// Off, then on; confirmed as a restart.
    PowerCycle,
}

/// Every transition, in the order the CLI lists them.
pub const TRANSITIONS: [Transition; 6] = [
    Transition::On,
    Transition::ForceOff,
    Transition::GracefulShutdown,
    Transition::GracefulRestart,
    Transition::ForceRestart,
    Transition::PowerCycle,
];

impl Transition {
    /// The reset it sends.
    pub fn reset_type(self) -> ResetType {
        match self {
            Transition::On => ResetType::On,
            Transition::ForceOff => ResetType::ForceOff,
            Transition::GracefulShutdown => ResetType::GracefulShutdown,
            Transition::GracefulRestart => ResetType::GracefulRestart,
            Transition::ForceRestart => ResetType::ForceRestart,
            Transition::PowerCycle => ResetType::PowerCycle,
        }
    }

    /// The forced transition a graceful one escalates to.
    pub fn forced(self) -> Option<Transition> {
        match self {
            Transition::GracefulShutdown => Some(Transition::ForceOff),
            Transition::GracefulRestart => Some(Transition::ForceRestart),
            _ => None,
        }
    }

    /// Whether it is a restart (confirmed by leaving `On`).
    pub fn is_restart(self) -> bool {
        matches!(
            self,
            Transition::GracefulRestart | Transition::ForceRestart | Transition::PowerCycle
        )
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reset_type().as_str())
    }
}

impl FromStr for Transition {
    type Err = String;

    /// A transition's name, in any case, with or without `-`/`_` (`ForceOff`, `force-off`).
    fn from_str(text: &str) -> Result<Transition, String> {
        let key = |s: &str| s.chars().filter(char::is_ascii_alphanumeric).collect::<String>();
        let wanted = key(text).to_ascii_lowercase();
        TRANSITIONS
            .into_iter()
            .find(|t| key(&t.to_string()).to_ascii_lowercase() == wanted)
            .ok_or_else(|| {
                let names: Vec<String> = TRANSITIONS.iter().map(ToString::to_string).collect();
                format!("unknown transition {text:?}; give one of {}", names.join(", "))
            })
    }
}

/// How a transition is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionOptions {
    /// How long to wait for the confirmation (each step, when escalating).
    pub deadline_ms: u64,
    /// How often `PowerState` is read.
    pub poll_interval_ms: u64,
    /// A graceful transition not confirmed by the deadline is followed by the forced one.
    pub escalate: bool,
}

impl Default for TransitionOptions {
    fn default() -> TransitionOptions {
        TransitionOptions { deadline_ms: 120_000, poll_interval_ms: 1_000, escalate: false }
    }
}

/// How a transition ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionOutcome {
    /// The last `PowerState` read.
    pub final_state: Option<PowerState>,
    /// Whether the BMC confirmed it (see [`Transition`]).
    pub confirmed: bool,
    /// Whether the graceful request was followed by the forced one.
    pub escalated: bool,
    /// What was sent and seen, in words.
    pub note: String,
}

/// A computer system's power.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPower {
    /// The system's `Id`.
    pub id: String,
    /// Its URI.
    pub uri: String,
    /// Its `PowerState`.
    pub power_state: Option<PowerState>,
    /// The reset types the BMC allows (empty when it does not say).
    pub allowed_resets: Vec<ResetType>,
}

/// A system and where its reset is POSTed.
#[derive(Debug, Clone)]
pub(crate) struct System {
    pub power: SystemPower,
    pub target: Option<String>,
}

/// Parses a `ComputerSystem`: the system, its reset's target and its `@Redfish.ActionInfo`.
pub fn system(
    uri: &str,
    doc: &Value,
) -> Result<(SystemPower, Option<String>, Option<String>), ParseError> {
    let id = parse::id(uri, doc)?;
    let power_state = match doc.get("PowerState") {
        None | Some(Value::Null) => None,
        Some(v) => Some(PowerState::parse(v.as_str().ok_or_else(|| ParseError::WrongType {
            property: "PowerState".into(),
            expected: "a string",
        })?)),
    };
    let action = doc.get("Actions").and_then(|a| a.get("#ComputerSystem.Reset"));
    let text =
        |key: &str| action.and_then(|a| a.get(key)).and_then(Value::as_str).map(str::to_string);
    let allowed = action.and_then(|a| a.get("ResetType@Redfish.AllowableValues"));
    let power =
        SystemPower { id, uri: uri.to_string(), power_state, allowed_resets: reset_types(allowed) };
    Ok((power, text("target"), text("@Redfish.ActionInfo")))
}

fn reset_types(values: Option<&Value>) -> Vec<ResetType> {
    let values = values.and_then(Value::as_array).into_iter().flatten();
    values.filter_map(Value::as_str).map(ResetType::parse).collect()
}

/// The `AllowableValues` of the `ResetType` parameter of an `ActionInfo` resource.
pub fn action_info_resets(doc: &Value) -> Vec<ResetType> {
    let parameters = doc.get("Parameters").and_then(Value::as_array).into_iter().flatten();
    let reset =
        parameters.into_iter().find(|p| p.get("Name").and_then(Value::as_str) == Some("ResetType"));
    reset_types(reset.and_then(|p| p.get("AllowableValues")))
}

/// Refuses a reset the system does not allow (when the BMC lists what it allows).
pub(crate) fn check_allowed(system: &SystemPower, reset: &ResetType) -> Result<(), Error> {
    if system.allowed_resets.is_empty() || system.allowed_resets.contains(reset) {
        return Ok(());
    }
    let allowed: Vec<&str> = system.allowed_resets.iter().map(ResetType::as_str).collect();
    Err(Error::Refused(format!(
        "system {} does not allow the reset {reset} (it allows: {})",
        system.id,
        allowed.join(", ")
    )))
}

impl Bmc {
    /// The URIs of the `Systems` collection's members.
    async fn system_uris(&self) -> Result<Vec<String>, Error> {
        let root = self.get_json(SERVICE_ROOT).await?;
        let root = root.ok_or_else(|| Error::NotFound { uri: SERVICE_ROOT.into() })?;
        let document = |uri: &str| {
            let uri = uri.to_string();
            move |source| Error::Document { uri, source }
        };
        let Some(systems) = parse::link(&root, "Systems").map_err(document(SERVICE_ROOT))? else {
            return Ok(Vec::new());
        };
        let collection = self.get_json(&systems).await?;
        let collection = collection.ok_or_else(|| Error::NotFound { uri: systems.clone() })?;
        parse::members(&collection).map_err(document(&systems))
    }

    /// One system: its document, and its `ActionInfo` when it has one.
    async fn system_at(&self, uri: &str) -> Result<System, Error> {
        let doc = self.get_json(uri).await?.ok_or_else(|| Error::NotFound { uri: uri.into() })?;
        let (mut power, target, info) =
            system(uri, &doc).map_err(|source| Error::Document { uri: uri.into(), source })?;
        if let Some(info) = info.filter(|_| power.allowed_resets.is_empty())
            && let Some(doc) = self.get_json(&info).await?
        {
            power.allowed_resets = action_info_resets(&doc);
        }
        Ok(System { power, target })
    }

    /// Each `ComputerSystem`: its power state and the resets it allows.
    pub async fn systems(&self) -> Result<Vec<SystemPower>, Error> {
        let uris = self.system_uris().await?;
        let systems = join_all(uris.iter().map(|uri| self.system_at(uri))).await;
        systems.into_iter().map(|s| s.map(|s| s.power)).collect()
    }

    /// The system with `Id` `system_id` (its URI's last segment, else its `Id`); `""` is the
    /// BMC's first system. Its URI is remembered: later calls read it directly (one request),
    /// and walk from the service root again only when it answers 404.
    pub(crate) async fn find_system(&self, system_id: &str) -> Result<System, Error> {
        let known = self.systems_found.lock().ok().and_then(|f| f.get(system_id).cloned());
        if let Some(uri) = known {
            match self.system_at(&uri).await {
                Err(Error::NotFound { .. }) => {}
                found => return found,
            }
        }
        let system = self.walk_to_system(system_id).await?;
        if let Ok(mut found) = self.systems_found.lock() {
            found.insert(system_id.to_string(), system.power.uri.clone());
        }
        Ok(system)
    }

    /// [`Bmc::find_system`] from the service root.
    async fn walk_to_system(&self, system_id: &str) -> Result<System, Error> {
        let uris = self.system_uris().await?;
        let last = |uri: &String| uri.trim_end_matches('/').rsplit('/').next() == Some(system_id);
        if let Some(uri) = uris.iter().find(|u| system_id.is_empty() || last(u)) {
            return self.system_at(uri).await;
        }
        for uri in &uris {
            let system = self.system_at(uri).await?;
            if system.power.id == system_id {
                return Ok(system);
            }
        }
        let ids: Vec<&str> = uris.iter().filter_map(|u| u.rsplit('/').next()).collect();
        Err(Error::Refused(format!(
            "the BMC has no system {system_id:?} (it has: {})",
            ids.join(", ")
        )))
    }

    /// The `PowerState` of the system `system_id` (`""`: the first).
    pub async fn power_state(&self, system_id: &str) -> Result<PowerState, Error> {
        // The system's document was just read to find it: its state is that read's.
        let system = self.find_system(system_id).await?;
        let uri = system.power.uri;
        system.power.power_state.ok_or_else(|| Error::Document {
            uri,
            source: ParseError::Missing("PowerState".into()),
        })
    }

    /// The `PowerState` read from the system's document now.
    pub(crate) async fn state_at(&self, uri: &str) -> Result<PowerState, Error> {
        let doc = self.get_json(uri).await?.ok_or_else(|| Error::NotFound { uri: uri.into() })?;
        let (power, _, _) =
            system(uri, &doc).map_err(|source| Error::Document { uri: uri.into(), source })?;
        power.power_state.ok_or_else(|| Error::Document {
            uri: uri.into(),
            source: ParseError::Missing("PowerState".into()),
        })
    }

    /// POSTs one `ComputerSystem.Reset` (refused before sending when the BMC does not allow it);
    /// no polling.
    pub async fn send_reset(&self, system_id: &str, reset: ResetType) -> Result<(), Error> {
        self.send_reset_chosen(system_id, |_| reset).await.map(|_| ())
    }

    /// [`Bmc::send_reset`] of the reset `choose` picks from the system as just read (its power
    /// state and allowed resets), with one read of it; the reset sent.
    pub async fn send_reset_chosen(
        &self,
        system_id: &str,
        choose: impl FnOnce(&SystemPower) -> ResetType,
    ) -> Result<ResetType, Error> {
        let system = self.find_system(system_id).await?;
        let reset = choose(&system.power);
        self.post_reset(&system, &reset).await.map(|_| reset)
    }

    /// POSTs the reset to the system's action target; the (successful) answer.
    pub(crate) async fn post_reset(
        &self,
        system: &System,
        reset: &ResetType,
    ) -> Result<Answer, Error> {
        check_allowed(&system.power, reset)?;
        let Some(target) = &system.target else {
            let id = &system.power.id;
            return Err(Error::Refused(format!("system {id} has no #ComputerSystem.Reset action")));
        };
        let body = json!({"ResetType": reset.as_str()});
        let answer = self.send(Method::POST, target, Some(&body), &[]).await?;
        if answer.status.is_success() { Ok(answer) } else { Err(answer.into_error(target)) }
    }
}

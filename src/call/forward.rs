//! Calls a route forwards to an employee's mobile or landline (`target = { forward = ... }`):
//! the caller is bridged to the external number through `[outgoing]`'s gateway or profile (the
//! same checked dial-string rules as click-to-call and outgoing calls) and Bitrix24 gets
//! `register TYPE=3` (incoming, redirected) with the card of the employee it was forwarded for,
//! then one `finish` (`200` with the talk time, else a missed call `304`). [`plan`] is pure; the
//! call then runs like an outgoing one (`call::outgoing::run`, its machine with `Inbound`).

use crate::call::click::CustomerRoute;
use crate::call::outgoing::{self, Placement, Plan};
use crate::call::status::Direction;
use crate::config::{CardMode, Config, RouteTarget};
use crate::esl::ChannelInfo;
use crate::ids::LegId;
use crate::outbox::op::{CallType, RegisterCall};

/// The plan for a call that `config.routes[route]` takes, when that route forwards; `None` for
/// any other route. `leg` becomes the forwarded leg's `origination_uuid`. Pure.
pub(crate) fn plan(config: &Config, route: usize, info: &ChannelInfo, leg: LegId) -> Option<Plan> {
    let route = config.routes.get(route)?;
    let RouteTarget::Forward {
        number,
        agent,
        ring,
    } = &route.target
    else {
        return None;
    };
    let Some(agent) = config.agent(agent) else {
        return Some(Plan::HandBack("the forwarding agent is not configured"));
    };
    let caller = info
        .caller_id_number
        .as_deref()
        .and_then(|n| config.numbers.parse(n).ok())
        .unwrap_or_else(|| config.bitrix.defaults.anonymous_number.clone());
    let register = RegisterCall {
        crm_create: route
            .crm_create
            .unwrap_or(config.bitrix.defaults.crm_create),
        ..outgoing::placed_register(
            config,
            info,
            agent.bitrix_user,
            caller.clone(),
            CallType::IncomingRedirected,
            route.line_number.as_ref(),
            // The employee sees the card while their mobile rings and while they talk, unless
            // their card never opens.
            agent.card != Some(CardMode::Never),
        )
    };
    let number = config.numbers.normalise(number);
    let dial = match config
        .outgoing
        .customer
        .as_ref()
        .map(CustomerRoute::from_config)
    {
        Some(Ok(way_out)) => way_out.leg(leg, &number, *ring, None),
        _ => {
            return Some(Plan::HandBack(
                "no usable gateway or profile to forward through",
            ));
        }
    };
    let Ok(dial) = dial else {
        return Some(Plan::HandBack("the forwarding dial string was refused"));
    };
    let settings = outgoing::settings(config, info, &register, &agent.id, Direction::Inbound);
    Some(Plan::Place(Box::new(Placement {
        register,
        dial,
        settings,
    })))
}

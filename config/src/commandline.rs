//! The command line of a check, notification or event handler, from the objects it concerns.
//!
//! Adapts resolved configuration objects to the macro engine ([`crate::macros`]): the
//! configuration macros of a host, service and contact (names, addresses, custom variables,
//! groups, intervals) come from their attributes; runtime macros (states, outputs, attempts,
//! notification type...) come from a map the scheduler fills, since only it knows them.

use crate::load::Config;
use crate::macros::{self, MacroContext, MacroEnv};
use crate::object::Object;
use crate::schema::Kind;
use std::collections::HashMap;

/// The objects a command runs for, and the runtime values known at that moment.
pub struct CommandContext<'a> {
    pub config: &'a Config,
    pub host: &'a Object,
    pub service: Option<&'a Object>,
    pub contact: Option<&'a Object>,
    /// Runtime macros by name (`HOSTSTATE`, `SERVICEOUTPUT`, `NOTIFICATIONTYPE`...).
    pub runtime: &'a HashMap<String, String>,
}

impl MacroContext for CommandContext<'_> {
    fn value(&self, name: &str) -> Option<String> {
        if let Some(v) = self.runtime.get(name) {
            return Some(v.clone());
        }
        if let Some(var) = name.strip_prefix("_HOST") {
            return custom(self.host, var);
        }
        if let Some(var) = name.strip_prefix("_SERVICE") {
            return self.service.and_then(|s| custom(s, var));
        }
        if let Some(var) = name.strip_prefix("_CONTACT") {
            return self.contact.and_then(|c| custom(c, var));
        }
        host_macro(self.host, name)
            .or_else(|| self.service.and_then(|s| service_macro(s, name)))
            .or_else(|| self.contact.and_then(|c| contact_macro(c, name)))
    }

    fn on_demand(&self, name: &str, host: &str, service: Option<&str>) -> Option<String> {
        let host_name = if host.is_empty() { self.host.name()? } else { host };
        let h = self.config.objects(Kind::Host).iter().find(|h| h.name() == Some(host_name))?;
        match service {
            None => host_macro(h, name),
            Some(desc) => {
                let s = self
                    .config
                    .objects(Kind::Service)
                    .iter()
                    .find(|s| s.get("host_name") == Some(host_name) && s.get("service_description") == Some(desc))?;
                service_macro(s, name)
            }
        }
    }
}

fn custom(o: &Object, var: &str) -> Option<String> {
    o.get(&format!("_{}", var.to_ascii_uppercase())).map(str::to_string)
}

fn host_macro(h: &Object, name: &str) -> Option<String> {
    let key = match name {
        "HOSTNAME" => "host_name",
        "HOSTALIAS" => "alias",
        "HOSTADDRESS" => "address",
        "HOSTDISPLAYNAME" => return h.get("display_name").or(h.name()).map(str::to_string),
        "HOSTGROUPNAMES" => return Some(h.list("hostgroups").join(",")),
        "HOSTGROUPNAME" => return h.list("hostgroups").first().map(|s| s.to_string()),
        "MAXHOSTATTEMPTS" => return Some(h.get("max_check_attempts").unwrap_or("1").to_string()),
        "HOSTNOTES" => "notes",
        "HOSTNOTESURL" => "notes_url",
        "HOSTACTIONURL" => "action_url",
        "HOSTREALM" => "realm",
        "HOSTCHECKCOMMAND" => "check_command",
        "HOSTBUSINESSIMPACT" => return Some(h.get("business_impact").unwrap_or("2").to_string()),
        _ => return None,
    };
    h.get(key).map(str::to_string)
}

fn service_macro(s: &Object, name: &str) -> Option<String> {
    let key = match name {
        "SERVICEDESC" => "service_description",
        "SERVICEDISPLAYNAME" => return s.get("display_name").or(s.get("service_description")).map(str::to_string),
        "SERVICEGROUPNAMES" => return Some(s.list("servicegroups").join(",")),
        "SERVICEGROUPNAME" => return s.list("servicegroups").first().map(|x| x.to_string()),
        "MAXSERVICEATTEMPTS" => return Some(s.get("max_check_attempts").unwrap_or("1").to_string()),
        "SERVICEISVOLATILE" => return Some(s.get("is_volatile").unwrap_or("0").to_string()),
        "SERVICENOTES" => "notes",
        "SERVICENOTESURL" => "notes_url",
        "SERVICEACTIONURL" => "action_url",
        "SERVICECHECKCOMMAND" => "check_command",
        "SERVICEBUSINESSIMPACT" => return Some(s.get("business_impact").unwrap_or("2").to_string()),
        _ => return None,
    };
    s.get(key).map(str::to_string)
}

fn contact_macro(c: &Object, name: &str) -> Option<String> {
    let key = match name {
        "CONTACTNAME" => "contact_name",
        "CONTACTALIAS" => "alias",
        "CONTACTEMAIL" => "email",
        "CONTACTPAGER" => "pager",
        "CONTACTGROUPNAMES" => return Some(c.list("contactgroups").join(",")),
        "CONTACTGROUPNAME" => return c.list("contactgroups").first().map(|x| x.to_string()),
        n => match n.strip_prefix("CONTACTADDRESS") {
            Some(i) if matches!(i, "1" | "2" | "3" | "4" | "5" | "6") => return c.get(&format!("address{i}")).map(str::to_string),
            _ => return None,
        },
    };
    c.get(key).map(str::to_string)
}

impl CommandContext<'_> {
    /// Resolves a command call (`check_tcp!7768`) into the command line to run. `None` when the
    /// command is not defined (validation reports it).
    pub fn command_line(&self, call: &str, now: i64) -> Option<String> {
        let (name, args) = macros::split_command_call(call);
        let cmd = self
            .config
            .objects(Kind::Command)
            .iter()
            .find(|c| c.name() == Some(name.as_str()))?;
        let template = cmd.get("command_line")?;
        let env = MacroEnv {
            resources: &self.config.main.resources,
            illegal_output_chars: &self.config.main.illegal_macro_output_chars,
            now,
        };
        Some(macros::resolve(template, &args, &env, self))
    }

    /// The check command line of the service (or, without one, of the host).
    pub fn check_command_line(&self, now: i64) -> Option<String> {
        let obj = self.service.unwrap_or(self.host);
        self.command_line(obj.get("check_command")?, now)
    }
}

//! The main file's parameters (`shinken.cfg` / `nagios.cfg`) and resource macros.
//!
//! Every parameter is kept as written (a later one overrides an earlier one, as Shinken reads
//! several `-c` files); the ones the daemons act on are also typed here with Shinken's defaults
//! (semantics reference, section 6.8). `$NAME$=value` lines, from resource files or anywhere,
//! define resource macros (`$USER1$`).

use crate::diag::Diagnostics;
use crate::reader::Param;
use crate::schema;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Serialize)]
pub struct MainConfig {
    /// Every parameter as written, last value wins.
    pub params: BTreeMap<String, String>,
    /// Resource macros, without their `$`: `USER1` -> `/usr/lib/nagios/plugins`.
    pub resources: HashMap<String, String>,
    /// Seconds in one interval unit.
    pub interval_length: u32,
    /// Minutes between full retention saves (0: only on stop and reload).
    pub retention_update_interval: u32,
    /// Units over which first checks are spread.
    pub max_service_check_spread: u32,
    pub max_host_check_spread: u32,
    pub service_check_timeout: u32,
    pub host_check_timeout: u32,
    pub event_handler_timeout: u32,
    pub notification_timeout: u32,
    pub timeout_exit_status: u8,
    pub max_plugins_output_length: u32,
    pub enable_notifications: bool,
    pub execute_service_checks: bool,
    pub execute_host_checks: bool,
    pub accept_passive_service_checks: bool,
    pub accept_passive_host_checks: bool,
    pub enable_event_handlers: bool,
    pub enable_flap_detection: bool,
    pub process_performance_data: bool,
    pub check_external_commands: bool,
    pub check_service_freshness: bool,
    pub check_host_freshness: bool,
    pub additional_freshness_latency: u32,
    pub use_aggressive_host_checking: bool,
    pub log_initial_states: bool,
    pub log_passive_checks: bool,
    pub enable_environment_macros: bool,
    pub flap_history: u32,
    pub low_service_flap_threshold: u32,
    pub high_service_flap_threshold: u32,
    pub low_host_flap_threshold: u32,
    pub high_host_flap_threshold: u32,
    pub cached_host_check_horizon: u32,
    pub cached_service_check_horizon: u32,
    pub global_host_event_handler: Option<String>,
    pub global_service_event_handler: Option<String>,
    pub illegal_object_name_chars: String,
    pub illegal_macro_output_chars: String,
    pub no_event_handlers_during_downtimes: bool,
}

impl MainConfig {
    pub fn from_params(params: &[Param], diag: &mut Diagnostics) -> Self {
        let mut map = BTreeMap::new();
        let mut locs = HashMap::new();
        let mut resources = HashMap::new();
        for p in params {
            let key = p.key.trim();
            if let Some(name) = key.strip_prefix('$').and_then(|k| k.strip_suffix('$')) {
                if name.is_empty() {
                    diag.error(p.loc, "", "a resource macro needs a name between its `$`");
                } else {
                    resources.insert(name.to_string(), p.value.to_string());
                }
                continue;
            }
            map.insert(key.to_string(), p.value.to_string());
            locs.insert(key.to_string(), p.loc);
        }
        let mut num = |key: &str, default: u32| -> u32 {
            schema::u32_or(key, map.get(key).map(String::as_str), default, &mut |m| {
                diag.error(locs.get(key).copied(), "", m)
            })
        };
        let interval_length = num("interval_length", 60);
        let retention_update_interval = num("retention_update_interval", 60);
        let max_service_check_spread = num("max_service_check_spread", 30);
        let max_host_check_spread = num("max_host_check_spread", 30);
        let service_check_timeout = num("service_check_timeout", 60);
        let host_check_timeout = num("host_check_timeout", 30);
        let event_handler_timeout = num("event_handler_timeout", 30);
        let notification_timeout = num("notification_timeout", 30);
        let timeout_exit_status = num("timeout_exit_status", 2).min(3) as u8;
        let max_plugins_output_length = num("max_plugins_output_length", 8192);
        let additional_freshness_latency = num("additional_freshness_latency", 15);
        let flap_history = num("flap_history", 20);
        let low_service_flap_threshold = num("low_service_flap_threshold", 20);
        let high_service_flap_threshold = num("high_service_flap_threshold", 30);
        let low_host_flap_threshold = num("low_host_flap_threshold", 20);
        let high_host_flap_threshold = num("high_host_flap_threshold", 30);
        let cached_host_check_horizon = num("cached_host_check_horizon", 0);
        let cached_service_check_horizon = num("cached_service_check_horizon", 0);
        let mut flag = |key: &str, default: bool| -> bool {
            schema::bool_or(key, map.get(key).map(String::as_str), default, &mut |m| {
                diag.error(locs.get(key).copied(), "", m)
            })
        };
        let enable_notifications = flag("enable_notifications", true);
        let execute_service_checks = flag("execute_service_checks", true);
        let execute_host_checks = flag("execute_host_checks", true);
        let accept_passive_service_checks = flag("accept_passive_service_checks", true);
        let accept_passive_host_checks = flag("accept_passive_host_checks", true);
        let enable_event_handlers = flag("enable_event_handlers", true);
        let enable_flap_detection = flag("enable_flap_detection", true);
        let process_performance_data = flag("process_performance_data", true);
        let check_external_commands = flag("check_external_commands", true);
        let check_service_freshness = flag("check_service_freshness", true);
        let check_host_freshness = flag("check_host_freshness", true);
        let use_aggressive_host_checking = flag("use_aggressive_host_checking", false);
        let log_initial_states = flag("log_initial_states", true);
        let log_passive_checks = flag("log_passive_checks", true);
        let enable_environment_macros = flag("enable_environment_macros", true);
        let no_event_handlers_during_downtimes = flag("no_event_handlers_during_downtimes", false);
        if interval_length == 0 {
            diag.error(
                locs.get("interval_length").copied(),
                "",
                "interval_length must be at least 1 second",
            );
        }
        Self {
            global_host_event_handler: map.get("global_host_event_handler").filter(|s| !s.is_empty()).cloned(),
            global_service_event_handler: map.get("global_service_event_handler").filter(|s| !s.is_empty()).cloned(),
            illegal_object_name_chars: map
                .get("illegal_object_name_chars")
                .cloned()
                .unwrap_or_else(|| "`~!$%^&*\"|'<>?,()=".into()),
            illegal_macro_output_chars: map.get("illegal_macro_output_chars").cloned().unwrap_or_default(),
            params: map,
            resources,
            interval_length: interval_length.max(1),
            retention_update_interval,
            max_service_check_spread,
            max_host_check_spread,
            service_check_timeout,
            host_check_timeout,
            event_handler_timeout,
            notification_timeout,
            timeout_exit_status,
            max_plugins_output_length,
            enable_notifications,
            execute_service_checks,
            execute_host_checks,
            accept_passive_service_checks,
            accept_passive_host_checks,
            enable_event_handlers,
            enable_flap_detection,
            process_performance_data,
            check_external_commands,
            check_service_freshness,
            check_host_freshness,
            additional_freshness_latency,
            use_aggressive_host_checking,
            log_initial_states,
            log_passive_checks,
            enable_environment_macros,
            flap_history,
            low_service_flap_threshold,
            high_service_flap_threshold,
            low_host_flap_threshold,
            high_host_flap_threshold,
            cached_host_check_horizon,
            cached_service_check_horizon,
            no_event_handlers_during_downtimes,
        }
    }
}

//! What the language knows: object types, their name keys, which properties are lists, old
//! Nagios names, and the properties each type accepts.
//!
//! Data only, no logic beyond lookups: the stages that read, inherit and validate objects ask
//! here what a key means.

use serde::Serialize;

/// Every object type Shinken reads (semantics reference, section 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    Host,
    Service,
    HostGroup,
    ServiceGroup,
    Contact,
    ContactGroup,
    Command,
    TimePeriod,
    HostEscalation,
    ServiceEscalation,
    HostDependency,
    ServiceDependency,
    NotificationWay,
    Escalation,
    HostExtInfo,
    ServiceExtInfo,
    CheckModulation,
    MacroModulation,
    ResultModulation,
    BusinessImpactModulation,
    DiscoveryRule,
    DiscoveryRun,
    Trigger,
    Realm,
    Module,
    Arbiter,
    Scheduler,
    Poller,
    Reactionner,
    Broker,
    Receiver,
}

/// Every type with the word after `define` and the key of its JSON list.
const NAMES: [(Kind, &str, &str); 31] = [
    (Kind::Host, "host", "hosts"),
    (Kind::Service, "service", "services"),
    (Kind::HostGroup, "hostgroup", "hostgroups"),
    (Kind::ServiceGroup, "servicegroup", "servicegroups"),
    (Kind::Contact, "contact", "contacts"),
    (Kind::ContactGroup, "contactgroup", "contactgroups"),
    (Kind::Command, "command", "commands"),
    (Kind::TimePeriod, "timeperiod", "timeperiods"),
    (Kind::HostEscalation, "hostescalation", "hostescalations"),
    (Kind::ServiceEscalation, "serviceescalation", "serviceescalations"),
    (Kind::HostDependency, "hostdependency", "hostdependencies"),
    (Kind::ServiceDependency, "servicedependency", "servicedependencies"),
    (Kind::NotificationWay, "notificationway", "notificationways"),
    (Kind::Escalation, "escalation", "escalations"),
    (Kind::HostExtInfo, "hostextinfo", "hostextinfos"),
    (Kind::ServiceExtInfo, "serviceextinfo", "serviceextinfos"),
    (Kind::CheckModulation, "checkmodulation", "checkmodulations"),
    (Kind::MacroModulation, "macromodulation", "macromodulations"),
    (Kind::ResultModulation, "resultmodulation", "resultmodulations"),
    (
        Kind::BusinessImpactModulation,
        "businessimpactmodulation",
        "businessimpactmodulations",
    ),
    (Kind::DiscoveryRule, "discoveryrule", "discoveryrules"),
    (Kind::DiscoveryRun, "discoveryrun", "discoveryruns"),
    (Kind::Trigger, "trigger", "triggers"),
    (Kind::Realm, "realm", "realms"),
    (Kind::Module, "module", "modules"),
    (Kind::Arbiter, "arbiter", "arbiters"),
    (Kind::Scheduler, "scheduler", "schedulers"),
    (Kind::Poller, "poller", "pollers"),
    (Kind::Reactionner, "reactionner", "reactionners"),
    (Kind::Broker, "broker", "brokers"),
    (Kind::Receiver, "receiver", "receivers"),
];

impl Kind {
    pub const ALL: [Kind; 31] = [
        Kind::Host,
        Kind::Service,
        Kind::HostGroup,
        Kind::ServiceGroup,
        Kind::Contact,
        Kind::ContactGroup,
        Kind::Command,
        Kind::TimePeriod,
        Kind::HostEscalation,
        Kind::ServiceEscalation,
        Kind::HostDependency,
        Kind::ServiceDependency,
        Kind::NotificationWay,
        Kind::Escalation,
        Kind::HostExtInfo,
        Kind::ServiceExtInfo,
        Kind::CheckModulation,
        Kind::MacroModulation,
        Kind::ResultModulation,
        Kind::BusinessImpactModulation,
        Kind::DiscoveryRule,
        Kind::DiscoveryRun,
        Kind::Trigger,
        Kind::Realm,
        Kind::Module,
        Kind::Arbiter,
        Kind::Scheduler,
        Kind::Poller,
        Kind::Reactionner,
        Kind::Broker,
        Kind::Receiver,
    ];

    /// The six daemon roles, in the order `check-config` prints them.
    pub const DAEMONS: [Kind; 6] = [
        Kind::Arbiter,
        Kind::Scheduler,
        Kind::Poller,
        Kind::Reactionner,
        Kind::Broker,
        Kind::Receiver,
    ];

    /// The word after `define`.
    pub fn keyword(self) -> &'static str {
        NAMES[self as usize].1
    }

    pub fn from_keyword(word: &str) -> Option<Kind> {
        NAMES.iter().find(|(_, kw, _)| *kw == word).map(|(k, _, _)| *k)
    }

    /// The key of the `--format json` object lists.
    pub fn plural(self) -> &'static str {
        NAMES[self as usize].2
    }

    /// The key that names an object of this type, if it has one. Services, dependencies,
    /// escalations of the host/service kind and extinfos are identified otherwise.
    pub fn name_key(self) -> Option<&'static str> {
        Some(match self {
            Kind::Host => "host_name",
            Kind::HostGroup => "hostgroup_name",
            Kind::ServiceGroup => "servicegroup_name",
            Kind::Contact => "contact_name",
            Kind::ContactGroup => "contactgroup_name",
            Kind::Command => "command_name",
            Kind::TimePeriod => "timeperiod_name",
            Kind::NotificationWay => "notificationway_name",
            Kind::Escalation => "escalation_name",
            Kind::CheckModulation => "checkmodulation_name",
            Kind::MacroModulation => "macromodulation_name",
            Kind::ResultModulation => "resultmodulation_name",
            Kind::BusinessImpactModulation => "business_impact_modulation_name",
            Kind::DiscoveryRule => "discoveryrule_name",
            Kind::DiscoveryRun => "discoveryrun_name",
            Kind::Trigger => "trigger_name",
            Kind::Realm => "realm_name",
            Kind::Module => "module_name",
            Kind::Arbiter => "arbiter_name",
            Kind::Scheduler => "scheduler_name",
            Kind::Poller => "poller_name",
            Kind::Reactionner => "reactionner_name",
            Kind::Broker => "broker_name",
            Kind::Receiver => "receiver_name",
            Kind::Service
            | Kind::HostEscalation
            | Kind::ServiceEscalation
            | Kind::HostDependency
            | Kind::ServiceDependency
            | Kind::HostExtInfo
            | Kind::ServiceExtInfo => return None,
        })
    }

    pub fn is_daemon(self) -> bool {
        Kind::DAEMONS.contains(&self)
    }
}

/// Is `key` a comma-separated list for objects of `kind`? Repeated list keys concatenate, `+`
/// appends to the inherited list, and JSON shows them as arrays.
pub fn is_list(kind: Kind, key: &str) -> bool {
    match key {
        "use"
        | "parents"
        | "hostgroups"
        | "contacts"
        | "contact_groups"
        | "notification_options"
        | "flap_detection_options"
        | "stalking_options"
        | "members"
        | "hostgroup_members"
        | "servicegroup_members"
        | "contactgroup_members"
        | "servicegroups"
        | "contactgroups"
        | "host_notification_commands"
        | "service_notification_commands"
        | "host_notification_options"
        | "service_notification_options"
        | "notificationways"
        | "exclude"
        | "escalation_options"
        | "notification_failure_criteria"
        | "execution_failure_criteria"
        | "dependent_host_name"
        | "dependent_hostgroup_name"
        | "escalations"
        | "modules"
        | "realm_members"
        | "poller_tags"
        | "reactionner_tags"
        | "resultmodulations"
        | "business_impact_modulations"
        | "checkmodulations"
        | "macromodulations"
        | "labels"
        | "service_excludes"
        | "service_includes"
        | "dependent_service_description"
        | "realms" => true,
        // A service, dependency or escalation may name several hosts; a host names itself.
        "host_name" => !matches!(kind, Kind::Host | Kind::Arbiter),
        "service_description" => matches!(kind, Kind::ServiceDependency | Kind::ServiceEscalation),
        "hostgroup_name" => matches!(
            kind,
            Kind::HostDependency | Kind::ServiceDependency | Kind::HostEscalation | Kind::ServiceEscalation
        ),
        _ => false,
    }
}

/// Old Nagios names Shinken maps to its own (semantics reference, section 6.1).
pub fn canonical_key(key: &str) -> &str {
    match key {
        "normal_check_interval" => "check_interval",
        "retry_check_interval" => "retry_interval",
        "criticity" => "business_impact",
        "hostgroup" => "hostgroup_name",
        "hostgroups_name" => "hostgroup_name",
        _ => key,
    }
}

/// Keys every object type accepts: template machinery and bookkeeping.
const COMMON: &[&str] = &["name", "use", "register", "definition_order", "imported_from"];

const HOST: &[&str] = &[
    "host_name",
    "alias",
    "display_name",
    "address",
    "address6",
    "parents",
    "hostgroups",
    "check_command",
    "initial_state",
    "initial_output",
    "max_check_attempts",
    "check_interval",
    "retry_interval",
    "active_checks_enabled",
    "passive_checks_enabled",
    "check_period",
    "obsess_over_host",
    "obsess",
    "check_freshness",
    "freshness_threshold",
    "event_handler",
    "event_handler_enabled",
    "low_flap_threshold",
    "high_flap_threshold",
    "flap_detection_enabled",
    "flap_detection_options",
    "process_perf_data",
    "retain_status_information",
    "retain_nonstatus_information",
    "contacts",
    "contact_groups",
    "notification_interval",
    "first_notification_delay",
    "notification_period",
    "notification_options",
    "notifications_enabled",
    "stalking_options",
    "notes",
    "notes_url",
    "action_url",
    "icon_image",
    "icon_image_alt",
    "icon_set",
    "vrml_image",
    "statusmap_image",
    "2d_coords",
    "3d_coords",
    "realm",
    "poller_tag",
    "reactionner_tag",
    "resultmodulations",
    "business_impact_modulations",
    "escalations",
    "maintenance_period",
    "time_to_orphanage",
    "service_overrides",
    "service_excludes",
    "service_includes",
    "labels",
    "business_rule_output_template",
    "business_rule_smart_notifications",
    "business_rule_downtime_as_ack",
    "business_rule_host_notification_options",
    "business_rule_service_notification_options",
    "business_impact",
    "trigger",
    "trigger_name",
    "trigger_broker_raise_enabled",
    "checkmodulations",
    "macromodulations",
    "snapshot_enabled",
    "snapshot_command",
    "snapshot_period",
    "snapshot_criteria",
    "snapshot_interval",
    "custom_views",
    "hourly_value",
    "importance",
    "failure_prediction_enabled",
    "retain_state_information",
];

const SERVICE: &[&str] = &[
    "host_name",
    "hostgroup_name",
    "service_description",
    "display_name",
    "servicegroups",
    "is_volatile",
    "check_command",
    "initial_state",
    "initial_output",
    "max_check_attempts",
    "check_interval",
    "retry_interval",
    "active_checks_enabled",
    "passive_checks_enabled",
    "check_period",
    "obsess_over_service",
    "obsess",
    "check_freshness",
    "freshness_threshold",
    "event_handler",
    "event_handler_enabled",
    "low_flap_threshold",
    "high_flap_threshold",
    "flap_detection_enabled",
    "flap_detection_options",
    "process_perf_data",
    "retain_status_information",
    "retain_nonstatus_information",
    "notification_interval",
    "first_notification_delay",
    "notification_period",
    "notification_options",
    "notifications_enabled",
    "contacts",
    "contact_groups",
    "stalking_options",
    "notes",
    "notes_url",
    "action_url",
    "icon_image",
    "icon_image_alt",
    "poller_tag",
    "reactionner_tag",
    "resultmodulations",
    "business_impact_modulations",
    "escalations",
    "maintenance_period",
    "time_to_orphanage",
    "labels",
    "business_rule_output_template",
    "business_rule_smart_notifications",
    "business_rule_downtime_as_ack",
    "business_rule_host_notification_options",
    "business_rule_service_notification_options",
    "business_impact",
    "trigger",
    "trigger_name",
    "trigger_broker_raise_enabled",
    "checkmodulations",
    "macromodulations",
    "host_dependency_enabled",
    "duplicate_foreach",
    "default_value",
    "service_dependencies",
    "merge_host_contacts",
    "aggregation",
    "snapshot_enabled",
    "snapshot_command",
    "snapshot_period",
    "snapshot_criteria",
    "snapshot_interval",
    "custom_views",
    "hourly_value",
    "importance",
    "failure_prediction_enabled",
    "parallelize_check",
    "retain_state_information",
    "parents",
];

const CONTACT: &[&str] = &[
    "contact_name",
    "alias",
    "contactgroups",
    "host_notifications_enabled",
    "service_notifications_enabled",
    "host_notification_period",
    "service_notification_period",
    "host_notification_options",
    "service_notification_options",
    "host_notification_commands",
    "service_notification_commands",
    "email",
    "pager",
    "address1",
    "address2",
    "address3",
    "address4",
    "address5",
    "address6",
    "can_submit_commands",
    "is_admin",
    "expert",
    "retain_status_information",
    "retain_nonstatus_information",
    "notificationways",
    "password",
    "min_business_impact",
    "minimum_value",
];

/// The keys of a notification way (a contact may carry them itself).
pub const NOTIFICATIONWAY: &[&str] = &[
    "notificationway_name",
    "host_notifications_enabled",
    "service_notifications_enabled",
    "host_notification_period",
    "service_notification_period",
    "host_notification_options",
    "service_notification_options",
    "host_notification_commands",
    "service_notification_commands",
    "min_business_impact",
    "minimum_value",
];

const GROUPS: &[&str] = &[
    "hostgroup_name",
    "servicegroup_name",
    "contactgroup_name",
    "alias",
    "members",
    "hostgroup_members",
    "servicegroup_members",
    "contactgroup_members",
    "notes",
    "notes_url",
    "action_url",
    "realm",
];

const COMMAND: &[&str] = &[
    "command_name",
    "command_line",
    "poller_tag",
    "reactionner_tag",
    "module_type",
    "timeout",
    "enable_environment_macros",
    "priority",
];

const DEPENDENCY: &[&str] = &[
    "dependent_host_name",
    "dependent_hostgroup_name",
    "dependent_service_description",
    "host_name",
    "hostgroup_name",
    "service_description",
    "inherits_parent",
    "execution_failure_criteria",
    "notification_failure_criteria",
    "dependency_period",
    "explode_hostgroup",
];

const ESCALATION: &[&str] = &[
    "escalation_name",
    "host_name",
    "hostgroup_name",
    "service_description",
    "contacts",
    "contact_groups",
    "first_notification",
    "last_notification",
    "first_notification_time",
    "last_notification_time",
    "notification_interval",
    "escalation_period",
    "escalation_options",
];

const DAEMON: &[&str] = &[
    "address",
    "port",
    "spare",
    "realm",
    "manage_sub_realms",
    "manage_arbiters",
    "modules",
    "timeout",
    "data_timeout",
    "check_interval",
    "max_check_attempts",
    "polling_interval",
    "use_ssl",
    "hard_ssl_name_check",
    "passive",
    "satellitemap",
    "use_timezone",
    "min_workers",
    "max_workers",
    "processes_by_worker",
    "max_q_size",
    "q_factor",
    "results_batch",
    "poller_tags",
    "reactionner_tags",
    "broks_batch",
    "direct_routing",
    "accept_passive_unknown_check_results",
    "harakiri_threshold",
    "weight",
    "skip_initial_broks",
    "host_name",
    "max_plugins_output_length",
    "secret",
    "api_key",
    "http_proxy",
    "statsd_enabled",
    "statsd_host",
    "statsd_port",
    "statsd_prefix",
    "statsd_interval",
    "statsd_types",
    "statsd_pattern",
    "realms",
];

/// Is `key` a property objects of `kind` are known to take? Custom variables (`_FOO`) always
/// are; timeperiods take any key (every other line is a date range); modules take free keys.
pub fn is_known(kind: Kind, key: &str) -> bool {
    if key.starts_with('_') || COMMON.contains(&key) {
        return true;
    }
    let own: &[&[&str]] = match kind {
        Kind::Host => &[HOST],
        Kind::Service => &[SERVICE],
        Kind::HostGroup | Kind::ServiceGroup | Kind::ContactGroup => &[GROUPS],
        Kind::Contact => &[CONTACT],
        Kind::NotificationWay => &[NOTIFICATIONWAY],
        Kind::Command => &[COMMAND],
        Kind::HostDependency | Kind::ServiceDependency => &[DEPENDENCY],
        Kind::HostEscalation | Kind::ServiceEscalation | Kind::Escalation => &[ESCALATION],
        Kind::Arbiter | Kind::Scheduler | Kind::Poller | Kind::Reactionner | Kind::Broker | Kind::Receiver => &[DAEMON],
        Kind::Realm => &[&["realm_name", "realm_members", "default", "broker_complete_links", "higher_realms"]],
        // Free-form: module-specific keys, date ranges, extinfo and the rarely used Shinken types.
        _ => return true,
    };
    kind.name_key() == Some(key) || own.iter().any(|list| list.contains(&key))
}

/// Boolean text as Shinken reads it.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Integer text as Shinken reads it: float text is accepted and truncated.
pub fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim();
    t.parse::<i64>()
        .ok()
        .or_else(|| t.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f.trunc() as i64))
}

/// Reads `value` as a non-negative number (Shinken's integer rules), or gives `default` when
/// absent. A value that is not one is told to `bad` (with the key) and gives the default.
pub fn u32_or(key: &str, value: Option<&str>, default: u32, bad: &mut dyn FnMut(String)) -> u32 {
    let Some(v) = value else { return default };
    match parse_int(v) {
        Some(n) if (0..=u32::MAX as i64).contains(&n) => n as u32,
        _ => {
            bad(format!("{key}: '{v}' is not a non-negative number"));
            default
        }
    }
}

/// Reads `value` as a boolean (Shinken's rules), or gives `default` when absent; a value that
/// is not one is told to `bad` and gives the default.
pub fn bool_or(key: &str, value: Option<&str>, default: bool, bad: &mut dyn FnMut(String)) -> bool {
    let Some(v) = value else { return default };
    parse_bool(v).unwrap_or_else(|| {
        bad(format!("{key}: '{v}' is not a boolean (0/1)"));
        default
    })
}

/// Properties checked as numbers and booleans wherever they appear (after inheritance).
pub fn value_type(key: &str) -> ValueType {
    match key {
        "max_check_attempts"
        | "check_interval"
        | "retry_interval"
        | "freshness_threshold"
        | "notification_interval"
        | "first_notification_delay"
        | "low_flap_threshold"
        | "high_flap_threshold"
        | "business_impact"
        | "time_to_orphanage"
        | "port"
        | "timeout"
        | "data_timeout"
        | "polling_interval"
        | "min_workers"
        | "max_workers"
        | "processes_by_worker"
        | "weight"
        | "first_notification"
        | "last_notification"
        | "first_notification_time"
        | "last_notification_time"
        | "priority"
        | "min_business_impact"
        | "max_q_size"
        | "q_factor"
        | "results_batch"
        | "broks_batch"
        | "definition_order" => ValueType::Number,
        "active_checks_enabled"
        | "passive_checks_enabled"
        | "check_freshness"
        | "event_handler_enabled"
        | "flap_detection_enabled"
        | "process_perf_data"
        | "notifications_enabled"
        | "is_volatile"
        | "obsess_over_host"
        | "obsess_over_service"
        | "host_notifications_enabled"
        | "service_notifications_enabled"
        | "can_submit_commands"
        | "is_admin"
        | "spare"
        | "manage_sub_realms"
        | "manage_arbiters"
        | "use_ssl"
        | "passive"
        | "direct_routing"
        | "skip_initial_broks"
        | "inherits_parent"
        | "default"
        | "host_dependency_enabled"
        | "register"
        | "accept_passive_unknown_check_results" => ValueType::Bool,
        _ => ValueType::Text,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Text,
    Number,
    Bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_table_follows_the_enum() {
        for (i, (k, _, _)) in NAMES.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
    }

    #[test]
    fn keywords_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_keyword(k.keyword()), Some(k));
        }
        assert_eq!(Kind::from_keyword("hots"), None);
    }

    #[test]
    fn lists_depend_on_the_kind() {
        assert!(!is_list(Kind::Host, "host_name"));
        assert!(is_list(Kind::Service, "host_name"));
        assert!(!is_list(Kind::Service, "hostgroup_name"));
        assert!(is_list(Kind::HostDependency, "hostgroup_name"));
        assert!(is_list(Kind::Host, "contact_groups"));
    }

    #[test]
    fn values() {
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_bool("2"), None);
        assert_eq!(parse_int("5"), Some(5));
        assert_eq!(parse_int("5.9"), Some(5));
        assert_eq!(parse_int("five"), None);
        assert_eq!(canonical_key("normal_check_interval"), "check_interval");
    }

    #[test]
    fn known_keys() {
        assert!(is_known(Kind::Host, "host_name"));
        assert!(is_known(Kind::Host, "_MAC"));
        assert!(!is_known(Kind::Host, "hots_name"));
        assert!(is_known(Kind::TimePeriod, "monday"));
        assert!(is_known(Kind::Module, "uri"));
    }
}

//! The real trees of `../shared/corpus/` load with zero errors, and the counts are Shinken
//! 2.4.3's own (`../shared/corpus/EXPECTED.md`), except where we differ on purpose (said below).

use shinken_config::daemons::Role;
use shinken_config::diag::Severity;
use shinken_config::schema::Kind;
use std::path::PathBuf;

fn corpus(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus").join(rel)
}

fn load(rel: &str) -> shinken_config::Config {
    let cfg = shinken_config::load(&corpus(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let errors = cfg.diag.reports(Severity::Error, &cfg.sources);
    assert!(errors.is_empty(), "{rel}: {errors:#?}");
    cfg
}

fn assert_counts(cfg: &shinken_config::Config, expected: &[(Kind, usize)]) {
    for (kind, n) in expected {
        assert_eq!(cfg.count(*kind), *n, "count of {}", kind.plural());
    }
}

#[test]
fn shinken_etc_matches_shinken_2_4_3() {
    let cfg = load("shinken-etc");
    assert_counts(
        &cfg,
        &[
            (Kind::Host, 1),
            (Kind::Service, 0),
            (Kind::HostGroup, 1),
            (Kind::ServiceGroup, 0),
            (Kind::Contact, 2),
            // admins, users, and `admin`, created from contact admin's `contactgroups`.
            (Kind::ContactGroup, 3),
            // 20 defined + bp_rule, _internal_host_up, _echo.
            (Kind::Command, 23),
            (Kind::TimePeriod, 4),
            (Kind::ServiceDependency, 0),
            (Kind::HostDependency, 0),
            (Kind::NotificationWay, 3),
            (Kind::Realm, 1),
            (Kind::Module, 0),
            (Kind::Arbiter, 1),
            (Kind::Scheduler, 1),
            (Kind::Poller, 1),
            (Kind::Reactionner, 1),
            (Kind::Broker, 1),
            (Kind::Receiver, 1),
        ],
    );
    let s = cfg.topology.find("scheduler-master").unwrap();
    assert_eq!(
        (s.address.as_str(), s.port, s.spare, s.realm.as_str()),
        ("localhost", 7768, false, "All")
    );
}

#[test]
fn alignak_etc_matches_shinken_2_4_3() {
    let cfg = load("alignak-etc-1.0.0/alignak.cfg");
    assert_counts(
        &cfg,
        &[
            (Kind::Host, 1),
            (Kind::Service, 0),
            (Kind::HostGroup, 1),
            (Kind::Contact, 2),
            (Kind::ContactGroup, 2),
            (Kind::Command, 7),
            (Kind::TimePeriod, 4),
            (Kind::NotificationWay, 2),
            (Kind::Realm, 1),
            (Kind::Module, 0),
            (Kind::Arbiter, 1),
            (Kind::Scheduler, 1),
            (Kind::Poller, 1),
            (Kind::Reactionner, 1),
            (Kind::Broker, 1),
            (Kind::Receiver, 1),
        ],
    );
    assert_eq!(cfg.topology.find("broker-master").unwrap().address, "127.0.0.1");
}

#[test]
fn course4_resolves_to_the_twelve_daemons_of_the_course() {
    let cfg = load("course4-etc");
    assert_counts(
        &cfg,
        &[
            (Kind::Host, 2),
            (Kind::Service, 7),
            (Kind::HostGroup, 1),
            (Kind::Contact, 1),
            (Kind::ContactGroup, 1),
            (Kind::Command, 9),
            (Kind::TimePeriod, 1),
            // admin_inner_notificationway, from the contact's own notification lines.
            (Kind::NotificationWay, 1),
            (Kind::Realm, 1),
            (Kind::Module, 3),
            (Kind::Arbiter, 2),
            (Kind::Scheduler, 2),
            // Deliberate difference: Shinken 2.4.3 counts 1 poller, 1 reactionner and 1 broker
            // because the course's spares reuse their master's name and 2.4 drops one
            // definition silently. We keep both and rename the spare `<name>-spare`.
            (Kind::Poller, 2),
            (Kind::Reactionner, 2),
            (Kind::Broker, 2),
            (Kind::Receiver, 2),
        ],
    );
    let mut services: Vec<String> = cfg
        .objects(Kind::Service)
        .iter()
        .map(|s| format!("{}/{}", s.get("host_name").unwrap(), s.get("service_description").unwrap()))
        .collect();
    services.sort();
    assert_eq!(
        services,
        [
            "courses-a/Load",
            "courses-a/Poller port",
            "courses-a/Root disk",
            "courses-a/Scheduler port",
            "courses-b/Always critical",
            "courses-b/Poller port",
            "courses-b/Scheduler port"
        ]
    );

    // Every master on box A, every spare on box B, as the course lays them out.
    let table: Vec<(Role, &str, bool, &str)> = cfg
        .topology
        .daemons
        .iter()
        .map(|d| (d.role, d.name.as_str(), d.spare, d.address.as_str()))
        .collect();
    assert_eq!(
        table,
        [
            (Role::Arbiter, "arbiter-master", false, "127.0.0.2"),
            (Role::Arbiter, "arbiter-spare", true, "127.0.0.3"),
            (Role::Scheduler, "scheduler-master", false, "127.0.0.2"),
            (Role::Scheduler, "scheduler-spare", true, "127.0.0.3"),
            (Role::Poller, "poller-master", false, "127.0.0.2"),
            (Role::Poller, "poller-master-spare", true, "127.0.0.3"),
            (Role::Reactionner, "reactionner-master", false, "127.0.0.2"),
            (Role::Reactionner, "reactionner-master-spare", true, "127.0.0.3"),
            (Role::Broker, "broker-master", false, "127.0.0.2"),
            (Role::Broker, "broker-master-spare", true, "127.0.0.3"),
            (Role::Receiver, "receiver-master", false, "127.0.0.2"),
            (Role::Receiver, "receiver-1", true, "127.0.0.3"),
        ]
    );
    // The renames are warnings that name both files.
    let warnings = cfg.diag.reports(Severity::Warning, &cfg.sources);
    let renames: Vec<_> = warnings.iter().filter(|w| w.message.contains("renamed")).collect();
    assert_eq!(renames.len(), 3, "{warnings:#?}");
    assert!(renames[0].file.ends_with("pollers/poller-spare.cfg"));
    assert!(renames[0].message.contains("pollers/poller-master.cfg"));

    // Timings and modules as written.
    let sched = cfg.topology.find("scheduler-spare").unwrap();
    assert_eq!(
        (sched.check_interval, sched.max_check_attempts, sched.timeout, sched.data_timeout),
        (60, 3, 3, 120)
    );
    assert_eq!(sched.modules, ["MongodbRetention"]);
    let retention = cfg.topology.module("MongodbRetention").unwrap();
    assert!(retention.is_type("mongodb-retention"));
    assert_eq!(retention.params["uri"], "mongodb://127.0.0.4/?safe=false");
    assert_eq!(retention.params["database"], "shinken");
    let arb = cfg.topology.find("arbiter-spare").unwrap();
    assert_eq!(arb.host_name.as_deref(), Some("courses-b"));
    assert_eq!(arb.modules, ["CommandFile"]);
    assert_eq!(cfg.main.resources["USER1"], "/usr/lib/nagios/plugins");
    assert_eq!(cfg.main.max_service_check_spread, 5);

    // Inheritance and implicit inheritance: a service takes its host's nothing here (the
    // template gives all), and the host's custom variable is upper-cased and kept.
    let a = cfg.objects(Kind::Host).iter().find(|h| h.name() == Some("courses-a")).unwrap();
    assert_eq!(a.get("_ALIVE_PORT"), Some("7770"));
    assert_eq!(a.get("check_command"), Some("check_host_alive"));
    assert_eq!(a.get("max_check_attempts"), Some("2"));
}

//! The loading pipeline on small trees: what it resolves, and how it reports each kind of
//! mistake (file, line, object, message), all in one pass.

use shinken_config::commandline::CommandContext;
use shinken_config::diag::{Report, Severity};
use shinken_config::schema::Kind;
use std::collections::HashMap;
use std::path::PathBuf;

/// A tree in its own temporary directory, removed on drop.
struct Tree {
    dir: PathBuf,
}

impl Tree {
    fn new(files: &[(&str, &str)]) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shinken-pipeline-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Tree { dir }
    }

    fn load(&self) -> shinken_config::Config {
        shinken_config::load(&self.dir).unwrap()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const MAIN: &str = "cfg_dir=objects\nresource_file=resource.cfg\n";
const BASE: &str = "
define timeperiod {
    timeperiod_name 24x7
    monday 00:00-24:00
}
define command {
    command_name check_ping
    command_line $USER1$/check_ping -H $HOSTADDRESS$ -w $ARG1$ -c $ARG2$
}
define contact {
    contact_name admin
    email admin@example.org
}
define contactgroup {
    contactgroup_name admins
    members admin
}
define host {
    name generic-host
    register 0
    check_period 24x7
    notification_period 24x7
    contact_groups admins
    notification_interval 30
    max_check_attempts 3
}
define service {
    name generic-service
    register 0
    check_interval 5
    retry_interval 1
    max_check_attempts 3
}
";

fn tree(objects: &str) -> Tree {
    Tree::new(&[
        ("shinken.cfg", MAIN),
        ("resource.cfg", "$USER1$=/usr/lib/nagios/plugins\n"),
        ("objects/base.cfg", BASE),
        ("objects/test.cfg", objects),
    ])
}

fn errors(cfg: &shinken_config::Config) -> Vec<Report> {
    cfg.diag.reports(Severity::Error, &cfg.sources)
}

fn warnings(cfg: &shinken_config::Config) -> Vec<Report> {
    cfg.diag.reports(Severity::Warning, &cfg.sources)
}

fn find<'a>(reports: &'a [Report], needle: &str) -> &'a Report {
    reports
        .iter()
        .find(|r| r.message.contains(needle))
        .unwrap_or_else(|| panic!("no report containing {needle:?} in {reports:#?}"))
}

fn service_names(cfg: &shinken_config::Config) -> Vec<String> {
    let mut v: Vec<String> = cfg
        .objects(Kind::Service)
        .iter()
        .map(|s| format!("{}/{}", s.get("host_name").unwrap(), s.get("service_description").unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn every_mistake_is_reported_in_one_pass_with_file_line_and_object() {
    let t = tree(
        "define host {
    use generic-host
    host_name web1
    check_command check_nope
    max_check_attempts three
    active_checks_enabled maybe
}
define service {
    use generic-service
    host_name web1
    service_description HTTP
    check_command check_ping!100,20%!500,60%
    check_period nightly
    contacts bob
}
define service {
    use generic-service
    host_name web9
    service_description Ghost
    check_command check_ping
}
define service {
    use generic-service,no-such-template
    host_name web1
    service_description NoCommand
}
",
    );
    let cfg = t.load();
    let errs = errors(&cfg);
    let e = find(&errs, "check_command: the command 'check_nope' is not defined");
    assert!(
        e.file.ends_with("objects/test.cfg") && e.line == 4 && e.object == "host 'web1'",
        "{e:?}"
    );
    let e = find(&errs, "max_check_attempts: 'three' is not a number");
    assert_eq!(e.line, 5);
    let e = find(&errs, "active_checks_enabled: 'maybe' is not a boolean");
    assert_eq!(e.line, 6);
    let e = find(&errs, "check_period: the timeperiod 'nightly' is not defined");
    assert_eq!((e.line, e.object.as_str()), (13, "service 'web1/HTTP'"));
    let e = find(&errs, "contacts: the contact 'bob' is not defined");
    assert_eq!(e.line, 14);
    let e = find(&errs, "the host 'web9' is unknown");
    assert_eq!(e.line, 18);
    let e = find(&errs, "check_command property is missing");
    assert_eq!(e.object, "service 'web1/NoCommand'");
    // An unknown template is only a warning, as in Shinken 2.4.
    let warns = warnings(&cfg);
    let w = find(&warns, "unknown template 'no-such-template'");
    assert_eq!(w.line, 22, "the line of the define");
    assert_eq!(errs.len(), 7, "{errs:#?}");
}

#[test]
fn output_line_format_is_file_line_object_message() {
    let t = tree("define host {\n    host_name h\n    check_period nope\n}\n");
    let cfg = t.load();
    let text = shinken_config::output::text(&cfg);
    let path = t.dir.join("objects/test.cfg");
    let expected = format!("{}:3: host 'h': check_period: the timeperiod 'nope' is not defined", path.display());
    // The error follows its total, alone on its line.
    let after_total: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("Total Errors:")).collect();
    assert_eq!(after_total[0], "Total Errors:   1");
    assert_eq!(after_total[1], expected);
    assert!(text.starts_with("Checked 1 hosts.\nChecked 0 services.\nChecked 0 host groups.\n"));
}

#[test]
fn template_loops_are_errors() {
    let t = tree(
        "define host {\n name a\n use b\n register 0\n}\ndefine host {\n name b\n use a\n register 0\n}\ndefine host {\n host_name h\n use a\n}\n",
    );
    let cfg = t.load();
    assert!(find(&errors(&cfg), "template loop").object.contains("template"));
}

#[test]
fn duplicates_keep_the_last_definition_with_a_warning() {
    let t = tree("define host {\n host_name h\n alias first\n}\ndefine host {\n host_name h\n alias second\n}\n");
    let cfg = t.load();
    assert!(errors(&cfg).is_empty());
    assert_eq!(cfg.objects(Kind::Host).len(), 1);
    assert_eq!(cfg.objects(Kind::Host)[0].get("alias"), Some("second"));
    let warns = warnings(&cfg);
    let w = find(&warns, "duplicate host name 'h'");
    assert_eq!(w.line, 5);
}

#[test]
fn realm_and_daemon_checks() {
    let t = tree(
        "define realm {\n realm_name A\n default 1\n}\ndefine realm {\n realm_name B\n default 1\n}\ndefine realm {\n realm_name C\n}\n\
         define scheduler {\n scheduler_name s1\n realm A\n}\ndefine broker {\n broker_name b1\n realm B\n}\n\
         define poller {\n poller_name p1\n realm A\n port 99999\n}\n\
         define host {\n host_name h\n realm C\n}\n",
    );
    let cfg = t.load();
    let errs = errors(&cfg);
    find(&errs, "more than one default realm");
    let e = find(&errs, "the scheduler s1 got no broker in its realm or upper");
    assert_eq!(e.line, 12);
    find(&errs, "the realm C has hosts (e.g. 'h') but no scheduler");
    find(&errs, "port: 99999 is not a TCP port");
}

#[test]
fn defaults_when_no_daemon_is_defined() {
    let t = tree("define host {\n host_name h\n}\n");
    let cfg = t.load();
    assert!(errors(&cfg).is_empty(), "{:#?}", errors(&cfg));
    let names: Vec<&str> = cfg.topology.daemons.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Default-Arbiter",
            "Default-Scheduler",
            "Default-Poller",
            "Default-Reactionner",
            "Default-Broker"
        ]
    );
    assert_eq!(cfg.topology.realms[0].name, "Default");
}

#[test]
fn services_on_groups_lists_exclusions_and_templates() {
    let t = tree(
        "define hostgroup {\n hostgroup_name web\n members w1,w2\n}\n\
         define hostgroup {\n hostgroup_name db\n}\n\
         define hostgroup {\n hostgroup_name all-servers\n hostgroup_members web,db\n}\n\
         define host {\n name linux-tpl\n register 0\n use generic-host\n}\n\
         define host {\n use linux-tpl\n host_name w1\n}\n\
         define host {\n use generic-host\n host_name w2\n}\n\
         define host {\n use generic-host\n host_name d1\n hostgroups db\n}\n\
         define service {\n use generic-service\n hostgroup_name web\n service_description HTTP\n check_command check_ping!1!2\n}\n\
         define service {\n use generic-service\n host_name *,!w2\n service_description Ping\n check_command check_ping!1!2\n}\n\
         define service {\n use generic-service\n hostgroup_name all-servers&!web\n service_description Backup\n check_command check_ping!1!2\n}\n\
         define service {\n name linux-svc\n register 0\n use generic-service\n host_name linux-tpl\n service_description Load\n check_command check_ping!1!2\n}\n",
    );
    let cfg = t.load();
    assert!(errors(&cfg).is_empty(), "{:#?}", errors(&cfg));
    assert_eq!(
        service_names(&cfg),
        ["d1/Backup", "d1/Ping", "w1/HTTP", "w1/Load", "w1/Ping", "w2/HTTP"]
    );
    // Membership is written out on both sides, nested groups included.
    let groups: HashMap<&str, Vec<&str>> = cfg
        .objects(Kind::HostGroup)
        .iter()
        .map(|g| (g.name().unwrap(), g.list("members")))
        .collect();
    assert_eq!(groups["all-servers"], ["w1", "w2", "d1"]);
    let d1 = cfg.objects(Kind::Host).iter().find(|h| h.name() == Some("d1")).unwrap();
    assert_eq!(d1.list("hostgroups"), ["db", "all-servers"]);
}

#[test]
fn services_inherit_from_their_host_when_unset() {
    let t = tree(
        "define host {\n use generic-host\n host_name h\n poller_tag DMZ\n}\n\
         define service {\n use generic-service\n host_name h\n service_description A\n check_command check_ping!1!2\n}\n\
         define service {\n use generic-service\n host_name h\n service_description B\n check_command check_ping!1!2\n contacts admin\n notification_interval 5\n}\n",
    );
    let cfg = t.load();
    let svc = |d: &str| {
        cfg.objects(Kind::Service)
            .iter()
            .find(|s| s.get("service_description") == Some(d))
            .unwrap()
            .clone()
    };
    let a = svc("A");
    assert_eq!(a.list("contact_groups"), ["admins"]);
    assert_eq!(a.get("notification_interval"), Some("30"));
    assert_eq!(a.get("notification_period"), Some("24x7"));
    assert_eq!(a.get("check_period"), Some("24x7"));
    assert_eq!(a.get("poller_tag"), Some("DMZ"));
    let b = svc("B");
    assert_eq!(b.get("contact_groups"), None, "contacts and contact_groups come as a pair");
    assert_eq!(b.get("notification_interval"), Some("5"));
}

#[test]
fn duplicate_foreach_clones_per_key() {
    let t = tree(
        "define host {\n use generic-host\n host_name h\n _disks C$(80%!90%)$,D$(70%!85%)$,E\n _!disks E\n}\n\
         define service {\n use generic-service\n host_name h\n service_description Disk $KEY$\n check_command check_ping!$VALUE1$!$KEY$\n duplicate_foreach _disks\n}\n",
    );
    let cfg = t.load();
    assert!(errors(&cfg).is_empty(), "{:#?}", errors(&cfg));
    assert_eq!(service_names(&cfg), ["h/Disk C", "h/Disk D"]);
    let c = &cfg.objects(Kind::Service)[0];
    assert_eq!(c.get("check_command"), Some("check_ping!80%!90%!C"));
}

#[test]
fn dependencies_and_escalations_resolve_to_objects() {
    let t = tree(
        "define host {\n use generic-host\n host_name a\n}\ndefine host {\n use generic-host\n host_name b\n parents a\n}\n\
         define service {\n use generic-service\n host_name a,b\n service_description S\n check_command check_ping!1!2\n}\n\
         define servicedependency {\n host_name a\n service_description S\n dependent_host_name b\n dependent_service_description S\n}\n\
         define servicedependency {\n host_name a\n service_description S\n dependent_host_name b\n dependent_service_description Nope\n}\n\
         define hostdependency {\n host_name a\n dependent_host_name b,zz\n}\n\
         define serviceescalation {\n host_name a,b\n service_description S\n contact_groups admins\n first_notification 2\n last_notification 0\n notification_interval 10\n}\n",
    );
    let cfg = t.load();
    assert_eq!(cfg.count(Kind::ServiceDependency), 2);
    assert_eq!(cfg.count(Kind::HostDependency), 1);
    assert_eq!(cfg.count(Kind::ServiceEscalation), 2);
    let errs = errors(&cfg);
    find(&errs, "the service 'b/Nope' is unknown");
    find(&errs, "dependent_host_name: the host 'zz' is unknown");
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn parent_loops_and_unknown_types() {
    let t =
        tree("define host {\n host_name a\n parents b\n}\ndefine host {\n host_name b\n parents a\n}\ndefine hots {\n host_name typo\n}\n");
    let cfg = t.load();
    let errs = errors(&cfg);
    find(&errs, "parents: a loop goes through");
    let e = find(&errs, "unknown object type 'hots'");
    assert_eq!(e.line, 9);
}

#[test]
fn timeperiod_forms_and_bad_entries() {
    let t = tree(
        "define timeperiod {\n timeperiod_name workhours\n monday 09:00-17:00\n day 1 - 15 00:00-24:00\n day -1 00:00-24:00\n thursday -1 november 00:00-24:00\n 2014-01-01 - 2014-02-01 / 3 00:00-24:00\n july 10 - august 15 00:00-24:00\n exclude 24x7\n}\n\
         define timeperiod {\n timeperiod_name broken\n mondey 09:00-17:00\n exclude nothing\n}\n",
    );
    let cfg = t.load();
    let warns = warnings(&cfg);
    let w = find(&warns, "invalid entry 'mondey 09:00-17:00'");
    assert_eq!(w.line, 13);
    find(&errors(&cfg), "exclude: the timeperiod 'nothing' is not defined");
    assert!(cfg.timeperiods.contains("workhours"));
}

#[test]
fn check_command_lines_are_built_from_macros() {
    let t = tree(
        "define host {\n use generic-host\n host_name web1\n address 10.0.0.5\n _port 8080\n}\n\
         define command {\n command_name check_port\n command_line $USER1$/check_tcp -H $HOSTADDRESS$ -p $_HOSTPORT$ -t $ARG1$ -s '$SERVICEDESC$ on $HOSTNAME$'\n}\n\
         define service {\n use generic-service\n host_name web1\n service_description Web port\n check_command check_port!3\n}\n",
    );
    let cfg = t.load();
    assert!(errors(&cfg).is_empty(), "{:#?}", errors(&cfg));
    let host = &cfg.objects(Kind::Host)[0];
    let svc = &cfg.objects(Kind::Service)[0];
    let runtime = HashMap::new();
    let ctx = CommandContext {
        config: &cfg,
        host,
        service: Some(svc),
        contact: None,
        runtime: &runtime,
    };
    assert_eq!(
        ctx.check_command_line(0).unwrap(),
        "/usr/lib/nagios/plugins/check_tcp -H 10.0.0.5 -p 8080 -t 3 -s 'Web port on web1'"
    );
}

#[test]
fn unreadable_entry_is_an_entry_error() {
    assert!(shinken_config::load(std::path::Path::new("/nonexistent/shinken.cfg")).is_err());
}

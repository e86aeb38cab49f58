//! Deterministic generators of valid Nagios-syntax configuration trees.
//!
//! Each generator writes into a directory `dir`: `main.cfg` (see
//! [`crate::nagios::write_main_cfg`]), `resource.cfg` (`$USER1$`, `$USER2$`), and object files
//! under `objects/` (one sub-directory too, to exercise the recursive `cfg_dir`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::nagios;

/// A tiny xorshift64* generator: deterministic across platforms and releases.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
        if r.0 == 0 {
            r.0 = 1;
        }
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A random subset of `0..n`, each element kept with probability `percent`/100, never
    /// empty (`n > 0`).
    pub fn subset(&mut self, n: usize, percent: u64) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).filter(|_| self.chance(percent)).collect();
        if v.is_empty() {
            v.push(self.below(n));
        }
        v
    }
}

/// A generated tree: its main file and the counts Nagios must report for it.
#[derive(Debug, Clone)]
pub struct Generated {
    /// `dir/main.cfg`.
    pub main_cfg: PathBuf,
    /// Expected `nagios4 -v` counts, keyed by [`nagios::COUNTED_TYPES`] names.
    pub expected: BTreeMap<String, u64>,
}

/// Accumulates object definitions for one file.
#[derive(Default)]
struct File {
    text: String,
}

impl File {
    /// `define kind {` then one attribute a line. Separators vary (spaces, tabs) on purpose.
    fn define(&mut self, kind: &str, attrs: &[(&str, String)]) {
        let _ = writeln!(self.text, "define {kind} {{");
        for (i, (k, v)) in attrs.iter().enumerate() {
            let sep = if i % 3 == 0 { "\t" } else { "    " };
            let _ = writeln!(self.text, "    {k}{sep}{v}");
        }
        self.text.push_str("}\n\n");
    }

    fn comment(&mut self, c: &str) {
        let _ = writeln!(self.text, "# {c}");
    }

    fn write(&self, path: &Path) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &self.text)
    }
}

fn s(v: impl Into<String>) -> String {
    v.into()
}

fn host(i: usize) -> String {
    format!("host-{i:03}")
}

const RESOURCE: &str = "# Resource macros\n$USER1$=/usr/lib/nagios/plugins\n$USER2$=public\n";

const WEEKDAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

fn common_commands(f: &mut File) -> u64 {
    let cmds: [(&str, &str); 9] = [
        (
            "check-host-alive",
            "$USER1$/check_ping -H $HOSTADDRESS$ -w 3000.0,80% -c 5000.0,100% -p 5",
        ),
        ("check_ping", "$USER1$/check_ping -H $HOSTADDRESS$ -w $ARG1$ -c $ARG2$"),
        ("check_tcp_port", "$USER1$/check_tcp -H $HOSTADDRESS$ -p $_HOSTPORT$"),
        ("check_http", "$USER1$/check_http -H $HOSTADDRESS$ -p $ARG1$ -u $ARG2$"),
        ("check_dummy", "$USER1$/check_dummy $ARG1$ \"$ARG2$\""),
        ("check_snmp", "$USER1$/check_snmp -H $HOSTADDRESS$ -C $USER2$ -o $ARG1$"),
        ("check_mac", "$USER1$/check_dummy 0 \"mac $_HOSTMAC_ADDRESS$ port $_HOSTPORT$\""),
        (
            "notify-host-by-email",
            "/usr/bin/printf \"%b\" \"$NOTIFICATIONTYPE$ $HOSTNAME$ is $HOSTSTATE$\\n\" | /usr/bin/mail -s \"$HOSTNAME$\" $CONTACTEMAIL$",
        ),
        (
            "notify-service-by-email",
            "/usr/bin/printf \"%b\" \"$NOTIFICATIONTYPE$ $SERVICEDESC$ on $HOSTNAME$\\n\" | /usr/bin/mail -s \"$SERVICEDESC$\" $CONTACTEMAIL$",
        ),
    ];
    for (name, line) in cmds {
        f.define("command", &[("command_name", s(name)), ("command_line", s(line))]);
    }
    cmds.len() as u64
}

fn base_timeperiods(f: &mut File) -> u64 {
    let mut all = vec![("timeperiod_name", s("24x7")), ("alias", s("24 Hours A Day, 7 Days A Week"))];
    for d in WEEKDAYS {
        all.push((d, s("00:00-24:00")));
    }
    f.define("timeperiod", &all);
    let mut work = vec![("timeperiod_name", s("workhours")), ("alias", s("Normal Work Hours"))];
    for d in &WEEKDAYS[1..6] {
        work.push((d, s("09:00-17:00")));
    }
    f.define("timeperiod", &work);
    f.define(
        "timeperiod",
        &[("timeperiod_name", s("none")), ("alias", s("No Time Is A Good Time"))],
    );
    3
}

/// A varied, valid configuration exercising inheritance, group membership in both directions,
/// host expansion with `*` and exclusions, custom variables, additive inheritance (`+`),
/// old attribute aliases, and many date-range forms. Same seed, same files.
pub fn varied(dir: &Path, seed: u64) -> io::Result<Generated> {
    let mut rng = Rng::new(seed);
    let mut counts: BTreeMap<String, u64> = nagios::COUNTED_TYPES.iter().map(|t| (s(*t), 0)).collect();
    let mut add = |k: &str, n: u64| *counts.get_mut(k).expect("counted type") += n;

    // Commands.
    let mut commands = File::default();
    commands.comment("Commands: $USER1$ from resource.cfg, $ARGn$, host macros, custom macros");
    let mut n_commands = common_commands(&mut commands);
    let extra_commands = rng.below(4);
    for i in 0..extra_commands {
        commands.define(
            "command",
            &[
                ("command_name", format!("check_extra_{i}")),
                (
                    "command_line",
                    format!("$USER1$/check_dummy {} \"extra $ARG1$ on $HOSTNAME$\"", i % 4),
                ),
            ],
        );
        n_commands += 1;
    }
    add("commands", n_commands);

    // Time periods, in the date-range forms Nagios prints back unchanged.
    let mut tps = File::default();
    let mut n_tps = base_timeperiods(&mut tps);
    tps.define(
        "timeperiod",
        &[
            ("timeperiod_name", s("us-holidays")),
            ("alias", s("U.S. Holidays")),
            ("january 1", s("00:00-24:00")),
            ("july 4", s("00:00-24:00")),
            ("thursday 4 november", s("00:00-24:00")),
            ("monday -1 may", s("00:00-24:00")),
            ("december 25", s("00:00-24:00")),
        ],
    );
    tps.define(
        "timeperiod",
        &[
            ("timeperiod_name", s("oncall")),
            ("alias", s("On call rota")),
            ("day 1 - 15", s("00:00-12:00")),
            ("monday 3", s("00:00-24:00")),
            ("2025-12-24", s("08:00-12:00")),
            ("2026-01-01 - 2026-01-07 / 2", s("10:00-11:00")),
            ("day 10 - 20 / 3", s("01:00-02:00")),
            ("july 4 - july 6", s("06:00-18:00")),
            ("monday 1 january - tuesday 2 february", s("08:00-09:00")),
            ("day -1", s("00:00-06:00")),
            ("saturday", s("08:00-12:00,14:00-18:00")),
            ("exclude", s("us-holidays")),
        ],
    );
    n_tps += 2;
    for i in 0..rng.below(3) {
        let mut attrs = vec![("timeperiod_name", format!("rota-{i}")), ("alias", format!("Rota {i}"))];
        for d in WEEKDAYS {
            if rng.chance(60) {
                let start = rng.below(12);
                attrs.push((d, format!("{start:02}:00-{:02}:30", start + 1 + rng.below(11))));
            }
        }
        if rng.chance(50) {
            attrs.push(("exclude", s("us-holidays,none")));
        }
        tps.define("timeperiod", &attrs);
        n_tps += 1;
    }
    add("time periods", n_tps);

    // Contacts and contact groups (every group named is defined).
    let mut contacts = File::default();
    contacts.define(
        "contact",
        &[
            ("name", s("generic-contact")),
            ("register", s("0")),
            ("host_notification_period", s("24x7")),
            ("service_notification_period", s("workhours")),
            ("host_notification_options", s("d,u,r")),
            ("service_notification_options", s("w,u,c,r")),
            ("host_notification_commands", s("notify-host-by-email")),
            ("service_notification_commands", s("notify-service-by-email")),
        ],
    );
    contacts.define(
        "contact",
        &[
            ("use", s("generic-contact")),
            ("contact_name", s("admin")),
            ("alias", s("Administrator")),
            ("email", s("admin@example.com")),
        ],
    );
    let n_ops = 2 + rng.below(3);
    for i in 0..n_ops {
        let mut attrs = vec![
            ("contact_name", format!("ops-{i}")),
            ("use", s("generic-contact")),
            ("email", format!("ops{i}@example.com")),
            ("pager", format!("555-01{i:02}")),
        ];
        if i > 0 && rng.chance(50) {
            attrs.push(("contactgroups", s("ops")));
        }
        if rng.chance(30) {
            attrs.push(("service_notification_period", s("24x7")));
        }
        contacts.define("contact", &attrs);
    }
    add("contacts", 1 + n_ops as u64);
    contacts.define(
        "contactgroup",
        &[("contactgroup_name", s("admins")), ("alias", s("Admins")), ("members", s("admin"))],
    );
    contacts.define(
        "contactgroup",
        &[("contactgroup_name", s("ops")), ("alias", s("Operators")), ("members", s("ops-0"))],
    );
    contacts.define(
        "contactgroup",
        &[
            ("contactgroup_name", s("everyone")),
            ("alias", s("Everyone")),
            ("contactgroup_members", s("admins,ops")),
        ],
    );
    add("contact groups", 3);

    // Templates: three levels, several parents in `use` (the left one wins).
    let mut templates = File::default();
    templates.comment("Host templates: generic-host <- linux-host/windows-host <- web-host/db-host");
    templates.define(
        "host",
        &[
            ("name", s("generic-host")),
            ("register", s("0")),
            ("check_command", s("check-host-alive")),
            ("max_check_attempts", s("3")),
            ("check_interval", s("5")),
            ("retry_interval", s("1")),
            ("check_period", s("24x7")),
            ("notification_period", s("24x7")),
            ("notification_interval", s("30")),
            ("notification_options", s("d,u,r")),
            ("contact_groups", s("admins")),
            ("_PORT", s("22")),
            ("_mac_address", s("00:00:00:00:00:00")),
        ],
    );
    templates.define(
        "host",
        &[
            ("name", s("linux-host")),
            ("use", s("generic-host")),
            ("register", s("0")),
            ("notes", s("Linux")),
            ("icon_image", s("linux.png")),
        ],
    );
    templates.define(
        "host",
        &[
            ("name", s("windows-host")),
            ("use", s("generic-host")),
            ("register", s("0")),
            ("notes", s("Windows")),
            ("max_check_attempts", s("5")),
            ("check_command", s("check_tcp_port")),
            ("_PORT", s("3389")),
        ],
    );
    templates.define(
        "host",
        &[
            ("name", s("web-host")),
            ("use", s("linux-host")),
            ("register", s("0")),
            ("check_command", s("check_ping!100.0,20%!500.0,60%")),
            ("contact_groups", s("+ops")),
            ("_PORT", s("80")),
        ],
    );
    templates.define(
        "host",
        &[
            ("name", s("db-host")),
            ("use", s("windows-host,linux-host")),
            ("register", s("0")),
            ("notification_interval", s("60")),
            ("_PORT", s("5432")),
        ],
    );
    templates.comment("Service templates; old names normal_check_interval/retry_check_interval");
    templates.define(
        "service",
        &[
            ("name", s("generic-service")),
            ("register", s("0")),
            ("max_check_attempts", s("3")),
            ("normal_check_interval", s("5")),
            ("retry_check_interval", s("1")),
            ("check_period", s("24x7")),
            ("notification_period", s("workhours")),
            ("notification_interval", s("60")),
            ("notification_options", s("w,u,c,r")),
            ("contact_groups", s("admins")),
        ],
    );
    templates.define(
        "service",
        &[
            ("name", s("local-service")),
            ("use", s("generic-service")),
            ("register", s("0")),
            ("check_interval", s("10")),
            ("max_check_attempts", s("4")),
        ],
    );
    templates.define(
        "service",
        &[
            ("name", s("critical-service")),
            ("use", s("generic-service")),
            ("register", s("0")),
            ("max_check_attempts", s("1")),
            ("notification_interval", s("15")),
            ("contact_groups", s("+ops")),
        ],
    );
    templates.define(
        "service",
        &[
            ("name", s("web-service")),
            ("use", s("critical-service,local-service")),
            ("register", s("0")),
            ("check_command", s("check_http!80!/")),
            ("_URL", s("/index.html")),
        ],
    );
    templates.define(
        "service",
        &[
            ("name", s("quiet-service")),
            ("use", s("local-service,critical-service")),
            ("register", s("0")),
            ("notifications_enabled", s("0")),
        ],
    );

    // Hosts.
    let n_hosts = 6 + rng.below(10);
    let n_hg = 3 + rng.below(2);
    let uses = [
        "web-host",
        "db-host",
        "linux-host",
        "web-host,windows-host",
        "windows-host,web-host",
        "db-host,web-host",
    ];
    let mut hg_members: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n_hg];
    let mut hosts = File::default();
    for i in 0..n_hosts {
        let mut attrs = vec![
            ("host_name", host(i)),
            ("use", s(*rng.pick(&uses))),
            ("address", format!("192.0.2.{}", 1 + i)),
        ];
        if rng.chance(50) {
            attrs.push(("alias", format!("Host number {i}")));
        }
        if rng.chance(30) {
            attrs.push(("_PORT", s("8080")));
        }
        if rng.chance(40) {
            attrs.push(("_mac_address", format!("52:54:00:00:00:{i:02x}")));
        }
        if i > 0 && rng.chance(40) {
            attrs.push(("parents", host(rng.below(i))));
        }
        if rng.chance(25) {
            attrs.push(("contacts", s("admin")));
        }
        if rng.chance(20) {
            attrs.push(("check_interval", s("2")));
        }
        if rng.chance(50) {
            let mut groups: Vec<usize> = rng.subset(n_hg, 30);
            groups.dedup();
            for &g in &groups {
                hg_members[g].insert(i);
            }
            let names: Vec<String> = groups.iter().map(|g| format!("hg-{g}")).collect();
            attrs.push(("hostgroups", names.join(",")));
        }
        hosts.define("host", &attrs);
    }
    add("hosts", n_hosts as u64);

    // Host groups: `members` (the other direction) and `hostgroup_members` nesting.
    let mut hostgroups = File::default();
    for (g, members) in hg_members.iter_mut().enumerate() {
        let listed = rng.subset(n_hosts, 25);
        members.extend(listed.iter().copied());
        let names: Vec<String> = listed.iter().map(|&h| host(h)).collect();
        hostgroups.define(
            "hostgroup",
            &[
                ("hostgroup_name", format!("hg-{g}")),
                ("alias", format!("Host group {g}")),
                ("members", names.join(",")),
            ],
        );
    }
    let mut hg_all: BTreeSet<usize> = hg_members[0].union(&hg_members[1]).copied().collect();
    let extra = rng.below(n_hosts);
    hg_all.insert(extra);
    hostgroups.define(
        "hostgroup",
        &[
            ("hostgroup_name", s("hg-all")),
            ("alias", s("Nested groups")),
            ("hostgroup_members", s("hg-0,hg-1")),
            ("members", host(extra)),
        ],
    );
    add("host groups", n_hg as u64 + 1);

    // Services.
    let mut services = File::default();
    let mut n_services = 0u64;
    let mut ping: Vec<usize> = rng.subset(n_hosts, 50);
    if !ping.contains(&0) {
        ping.insert(0, 0);
    }
    services.define(
        "service",
        &[
            ("host_name", ping.iter().map(|&h| host(h)).collect::<Vec<_>>().join(",")),
            ("service_description", s("PING")),
            ("use", s("local-service")),
            ("check_command", s("check_ping!100.0,20%!500.0,60%")),
        ],
    );
    n_services += ping.len() as u64;
    // All hosts but a few (never host-000).
    let excluded: BTreeSet<usize> = (0..1 + rng.below(2)).map(|_| 1 + rng.below(n_hosts - 1)).collect();
    let mut host_list = vec![s("*")];
    host_list.extend(excluded.iter().map(|&h| format!("!{}", host(h))));
    services.define(
        "service",
        &[
            ("host_name", host_list.join(",")),
            ("service_description", s("HTTP")),
            ("use", s("web-service")),
            ("servicegroups", s("sg-web")),
        ],
    );
    n_services += (n_hosts - excluded.len()) as u64;
    services.define(
        "service",
        &[
            ("hostgroup_name", s("hg-0")),
            ("service_description", s("SSH")),
            ("use", s("quiet-service")),
            ("check_command", s("check_tcp_port")),
        ],
    );
    n_services += hg_members[0].len() as u64;
    // A host group with a host excluded, when that leaves something.
    let mut db_attrs = vec![
        ("hostgroup_name", s("hg-all")),
        ("service_description", s("DB")),
        ("use", s("critical-service")),
        ("check_command", s("check_mac")),
    ];
    let mut db_hosts = hg_all.len();
    if hg_all.len() > 1 {
        let out = *hg_all.iter().nth(rng.below(hg_all.len())).expect("non-empty");
        db_attrs.push(("host_name", format!("!{}", host(out))));
        db_hosts -= 1;
    }
    services.define("service", &db_attrs);
    n_services += db_hosts as u64;
    let snmp: BTreeSet<usize> = hg_members[1].union(&hg_members[2]).copied().collect();
    services.define(
        "service",
        &[
            ("hostgroup_name", s("hg-1,hg-2")),
            ("service_description", s("SNMP uptime")),
            ("use", s("generic-service")),
            ("check_command", s("check_snmp!.1.3.6.1.2.1.1.3.0")),
            ("servicegroups", s("sg-snmp")),
            ("notes", s("polled with community $USER2$")),
        ],
    );
    n_services += snmp.len() as u64;
    let svc_uses = ["local-service", "critical-service", "web-service", "quiet-service"];
    for h in 0..n_hosts {
        for j in 0..1 + rng.below(3) {
            let mut attrs = vec![
                ("host_name", host(h)),
                ("service_description", format!("disk-{j}")),
                ("use", s(*rng.pick(&svc_uses))),
                ("check_command", format!("check_dummy!0!disk {j} ok")),
            ];
            if (h == 0 && j == 0) || rng.chance(30) {
                attrs.push(("servicegroups", s("sg-disk")));
            }
            if rng.chance(25) {
                attrs.push(("contacts", s("admin")));
            }
            if rng.chance(25) {
                attrs.push(("check_interval", s("3")));
            }
            if rng.chance(20) {
                attrs.push(("_THRESHOLD", format!("{}%", 80 + j)));
            }
            services.define("service", &attrs);
            n_services += 1;
        }
    }
    add("services", n_services);

    // Service groups, in a sub-directory.
    let mut sgs = File::default();
    let web_members: Vec<String> = (0..n_hosts)
        .filter(|h| !excluded.contains(h))
        .take(2)
        .map(|h| format!("{},HTTP", host(h)))
        .collect();
    sgs.define(
        "servicegroup",
        &[
            ("servicegroup_name", s("sg-web")),
            ("alias", s("Web")),
            ("members", web_members.join(",")),
        ],
    );
    sgs.define("servicegroup", &[("servicegroup_name", s("sg-snmp")), ("alias", s("SNMP"))]);
    sgs.define("servicegroup", &[("servicegroup_name", s("sg-disk")), ("alias", s("Disks"))]);
    sgs.define(
        "servicegroup",
        &[
            ("servicegroup_name", s("sg-all")),
            ("alias", s("All")),
            ("servicegroup_members", s("sg-web,sg-disk")),
        ],
    );
    add("service groups", 4);

    // One of each escalation and dependency.
    let mut deps = File::default();
    deps.define(
        "hostdependency",
        &[
            ("host_name", host(0)),
            ("dependent_host_name", host(1)),
            ("notification_failure_criteria", s("d,u")),
        ],
    );
    deps.define(
        "servicedependency",
        &[
            ("host_name", host(0)),
            ("service_description", s("PING")),
            ("dependent_host_name", host(0)),
            ("dependent_service_description", s("HTTP")),
            ("execution_failure_criteria", s("c")),
        ],
    );
    deps.define(
        "hostescalation",
        &[
            ("host_name", host(0)),
            ("first_notification", s("2")),
            ("last_notification", s("5")),
            ("notification_interval", s("10")),
            ("contact_groups", s("admins")),
        ],
    );
    deps.define(
        "serviceescalation",
        &[
            ("host_name", host(0)),
            ("service_description", s("PING")),
            ("first_notification", s("3")),
            ("last_notification", s("0")),
            ("notification_interval", s("20")),
            ("contacts", s("admin")),
        ],
    );
    for k in [
        "host dependencies",
        "service dependencies",
        "host escalations",
        "service escalations",
    ] {
        add(k, 1);
    }

    std::fs::write(dir.join("resource.cfg"), RESOURCE)?;
    let objects = dir.join("objects");
    commands.write(&objects.join("commands.cfg"))?;
    tps.write(&objects.join("timeperiods.cfg"))?;
    contacts.write(&objects.join("contacts.cfg"))?;
    templates.write(&objects.join("templates.cfg"))?;
    hosts.write(&objects.join("hosts.cfg"))?;
    hostgroups.write(&objects.join("hostgroups.cfg"))?;
    services.write(&objects.join("services.cfg"))?;
    sgs.write(&objects.join("groups").join("servicegroups.cfg"))?;
    deps.write(&objects.join("dependencies.cfg"))?;
    let main_cfg = nagios::write_main_cfg(dir, "objects")?;
    Ok(Generated {
        main_cfg,
        expected: counts,
    })
}

/// The benchmark shape: `n_services / 10` hosts (rounded up) with 10 services each, every
/// service defined on its own for its host. Hosts inherit generic-host <- site-S <- S-role;
/// services generic-service <- sla-gold/sla-silver <- svc-K. Hosts join a site and a role
/// host group each. Object files hold 1000 hosts and their services each.
pub fn scale(dir: &Path, n_services: usize) -> io::Result<PathBuf> {
    const SITES: usize = 5;
    const ROLES: [&str; 3] = ["web", "db", "app"];
    let n_hosts = n_services.div_ceil(10);
    let objects = dir.join("objects");

    let mut common = File::default();
    common_commands(&mut common);
    base_timeperiods(&mut common);
    common.define(
        "contact",
        &[
            ("contact_name", s("admin")),
            ("email", s("admin@example.com")),
            ("host_notification_period", s("24x7")),
            ("service_notification_period", s("24x7")),
            ("host_notification_options", s("d,u,r")),
            ("service_notification_options", s("w,u,c,r")),
            ("host_notification_commands", s("notify-host-by-email")),
            ("service_notification_commands", s("notify-service-by-email")),
        ],
    );
    common.define(
        "contactgroup",
        &[("contactgroup_name", s("admins")), ("alias", s("Admins")), ("members", s("admin"))],
    );
    common.define(
        "host",
        &[
            ("name", s("generic-host")),
            ("register", s("0")),
            ("check_command", s("check-host-alive")),
            ("max_check_attempts", s("3")),
            ("check_interval", s("5")),
            ("retry_interval", s("1")),
            ("check_period", s("24x7")),
            ("notification_period", s("24x7")),
            ("notification_interval", s("30")),
            ("contact_groups", s("admins")),
        ],
    );
    for site in 0..SITES {
        common.define(
            "host",
            &[
                ("name", format!("site-{site}")),
                ("use", s("generic-host")),
                ("register", s("0")),
                ("notes", format!("Site {site}")),
            ],
        );
        common.define(
            "hostgroup",
            &[("hostgroup_name", format!("site-{site}")), ("alias", format!("Site {site}"))],
        );
        for role in ROLES {
            common.define(
                "host",
                &[
                    ("name", format!("site-{site}-{role}")),
                    ("use", format!("site-{site}")),
                    ("register", s("0")),
                    ("_ROLE", s(role)),
                ],
            );
        }
    }
    for role in ROLES {
        common.define(
            "hostgroup",
            &[("hostgroup_name", format!("role-{role}")), ("alias", format!("Role {role}"))],
        );
    }
    common.define(
        "service",
        &[
            ("name", s("generic-service")),
            ("register", s("0")),
            ("max_check_attempts", s("3")),
            ("check_interval", s("5")),
            ("retry_interval", s("1")),
            ("check_period", s("24x7")),
            ("notification_period", s("workhours")),
            ("notification_interval", s("60")),
            ("contact_groups", s("admins")),
        ],
    );
    for (i, sla) in ["gold", "silver"].iter().enumerate() {
        common.define(
            "service",
            &[
                ("name", format!("sla-{sla}")),
                ("use", s("generic-service")),
                ("register", s("0")),
                ("max_check_attempts", format!("{}", 2 + i)),
            ],
        );
    }
    for k in 0..10 {
        common.define(
            "service",
            &[
                ("name", format!("svc-{k}")),
                ("use", format!("sla-{}", if k % 2 == 0 { "gold" } else { "silver" })),
                ("register", s("0")),
                ("check_command", format!("check_dummy!{}!service {k}", k % 3)),
            ],
        );
    }
    common.write(&objects.join("common.cfg"))?;

    let mut file = File::default();
    let mut chunk = 0;
    let mut left = n_services;
    for h in 0..n_hosts {
        let (site, role) = (h % SITES, ROLES[(h / SITES) % ROLES.len()]);
        let name = format!("host-{h:06}");
        file.define(
            "host",
            &[
                ("host_name", name.clone()),
                ("use", format!("site-{site}-{role}")),
                ("address", format!("10.{}.{}.{}", h >> 16 & 255, h >> 8 & 255, h & 255)),
                ("hostgroups", format!("site-{site},role-{role}")),
                ("_PORT", format!("{}", 8000 + h % 100)),
            ],
        );
        for k in 0..10.min(left) {
            file.define(
                "service",
                &[
                    ("host_name", name.clone()),
                    ("service_description", format!("svc-{k}")),
                    ("use", format!("svc-{k}")),
                ],
            );
        }
        left = left.saturating_sub(10);
        if (h + 1) % 1000 == 0 || h + 1 == n_hosts {
            file.write(&objects.join(format!("hosts-{chunk:03}.cfg")))?;
            file = File::default();
            chunk += 1;
        }
    }
    std::fs::write(dir.join("resource.cfg"), RESOURCE)?;
    nagios::write_main_cfg(dir, "objects")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
        let mut z = Rng::new(0);
        assert!((0..10).map(|_| z.next_u64()).any(|x| x != 0));
    }

    #[test]
    fn same_seed_same_files() {
        let (a, b) = (crate::TempDir::new("gen-a").unwrap(), crate::TempDir::new("gen-b").unwrap());
        varied(a.path(), 42).unwrap();
        varied(b.path(), 42).unwrap();
        for f in ["hosts.cfg", "services.cfg", "timeperiods.cfg"] {
            let x = std::fs::read_to_string(a.path().join("objects").join(f)).unwrap();
            let y = std::fs::read_to_string(b.path().join("objects").join(f)).unwrap();
            assert_eq!(x, y, "{f}");
        }
    }
}

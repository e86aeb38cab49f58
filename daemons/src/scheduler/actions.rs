//! Notifications and event handlers in the engine: the bookkeeping around the pure rules of
//! [`super::notify`] (semantics §3.7, §3.8, §3.2 for the hand-out to reactionners).
//!
//! Master notifications live in the item's `pending_notifications` (so retention keeps them, with
//! `current_notification_number` and `notified_contacts`); due masters are scattered each tick into
//! per-contact notifications, which, like event handlers, are [`Action`]s handed to reactionners
//! by `get_checks` with `do_actions` and consumed by `put_results`. The monitoring-log lines
//! (`SERVICE NOTIFICATION: ...`, `SERVICE EVENT HANDLER: ...`) are emitted when the action is
//! created, as Shinken does, as `log` broks and daemon log lines.

use super::engine::{ENV_MACROS, Engine, Events};
use super::notify::{self, Contact, Escalation, ItemView, MasterFate, NotifSettings, NotificationType, Options, ScatterInput, Way};
use super::state::{ItemKind, PendingNotification};
use crate::messages::{GetChecks, Job, JobResult, JobStatus};
use shinken_config::Config;
use shinken_config::object::Object;
use shinken_config::schema::{self, Kind};
use std::collections::HashMap;

/// A notification or an event handler for reactionners.
#[derive(Debug, Clone)]
pub struct Action {
    pub item: u32,
    pub what: ActionWhat,
    pub command_line: String,
    pub timeout: u32,
    pub env: Vec<(String, String)>,
    pub t_to_go: f64,
    pub reactionner_tag: Option<String>,
    /// Handed out: to which reactionner, when.
    pub out: Option<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ActionWhat {
    Notification {
        ty: NotificationType,
        contact: String,
        number: u32,
    },
    EventHandler,
}

/// Contacts, notification ways and escalations of a configuration, resolved to indexes.
pub struct Directory {
    pub contacts: Vec<Contact>,
    pub escalations: Vec<Escalation>,
    contact_index: HashMap<String, u32>,
    /// Contact group -> member indexes.
    groups: HashMap<String, Vec<u32>>,
    /// Named escalations (`escalations` on items).
    named: HashMap<String, u32>,
    /// `hostescalation` by host, `serviceescalation` by (host, service).
    by_host: HashMap<String, Vec<u32>>,
    by_service: HashMap<(String, String), Vec<u32>>,
}

fn flag(o: &Object, k: &str, d: bool) -> bool {
    o.get(k).and_then(schema::parse_bool).unwrap_or(d)
}

fn num(o: &Object, k: &str, d: f64) -> f64 {
    o.get(k).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(d)
}

fn period(o: &Object, k: &str) -> Option<String> {
    o.get(k).filter(|p| !p.trim().is_empty()).map(|p| p.trim().to_string())
}

/// Command calls of a `*_notification_commands` list (calls are comma separated).
fn commands(o: &Object, k: &str) -> Vec<String> {
    o.list(k).into_iter().map(str::to_string).collect()
}

fn way_from(o: &Object) -> Way {
    Way {
        host_notifications_enabled: flag(o, "host_notifications_enabled", true),
        service_notifications_enabled: flag(o, "service_notifications_enabled", true),
        host_notification_period: period(o, "host_notification_period"),
        service_notification_period: period(o, "service_notification_period"),
        host_notification_options: Options::parse(o.get("host_notification_options").unwrap_or("d,u,r,f,s"), "durfs"),
        service_notification_options: Options::parse(o.get("service_notification_options").unwrap_or("w,u,c,r,f,s"), "wucrfs"),
        host_notification_commands: commands(o, "host_notification_commands"),
        service_notification_commands: commands(o, "service_notification_commands"),
        min_business_impact: num(o, "min_business_impact", 0.0) as u32,
    }
}

impl Directory {
    pub fn new(cfg: &Config) -> Directory {
        let ways: HashMap<&str, &Object> = cfg
            .objects(Kind::NotificationWay)
            .iter()
            .filter_map(|w| w.name().map(|n| (n, w)))
            .collect();
        let mut contacts = Vec::new();
        let mut contact_index = HashMap::new();
        for (i, c) in cfg.objects(Kind::Contact).iter().enumerate() {
            let Some(name) = c.name() else { continue };
            let ways = c
                .list("notificationways")
                .into_iter()
                .filter_map(|w| ways.get(w))
                .map(|w| way_from(w))
                .collect();
            contact_index.insert(name.to_string(), contacts.len() as u32);
            contacts.push(Contact {
                name: name.to_string(),
                obj: i as u32,
                host_notifications_enabled: flag(c, "host_notifications_enabled", true),
                service_notifications_enabled: flag(c, "service_notifications_enabled", true),
                ways,
            });
        }
        let mut groups = HashMap::new();
        for g in cfg.objects(Kind::ContactGroup) {
            let Some(name) = g.name() else { continue };
            let members = g
                .list("members")
                .into_iter()
                .filter_map(|m| contact_index.get(m).copied())
                .collect();
            groups.insert(name.to_string(), members);
        }
        let mut d = Directory {
            contacts,
            escalations: Vec::new(),
            contact_index,
            groups,
            named: HashMap::new(),
            by_host: HashMap::new(),
            by_service: HashMap::new(),
        };
        for kind in [Kind::Escalation, Kind::HostEscalation, Kind::ServiceEscalation] {
            for (n, o) in cfg.objects(kind).iter().enumerate() {
                let idx = d.escalations.len() as u32;
                let name = o
                    .get("escalation_name")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}-{n}", kind.keyword()));
                let es = Escalation {
                    name: name.clone(),
                    first_notification: num(o, "first_notification", 0.0) as u32,
                    last_notification: num(o, "last_notification", 0.0) as u32,
                    time_based: o.get("first_notification").is_none()
                        && (o.get("first_notification_time").is_some() || o.get("last_notification_time").is_some()),
                    first_notification_time: num(o, "first_notification_time", 0.0),
                    last_notification_time: num(o, "last_notification_time", 0.0),
                    notification_interval: num(o, "notification_interval", -1.0),
                    escalation_period: period(o, "escalation_period"),
                    escalation_options: Options::parse(o.get("escalation_options").unwrap_or("d,u,r,w,c"), "durwc"),
                    contacts: d.contacts_of(o),
                };
                d.escalations.push(es);
                match kind {
                    Kind::Escalation => {
                        d.named.insert(name, idx);
                    }
                    Kind::HostEscalation => {
                        for h in o.list("host_name") {
                            d.by_host.entry(h.to_string()).or_default().push(idx);
                        }
                    }
                    _ => {
                        let host = o.get("host_name").unwrap_or_default().to_string();
                        for s in o.list("service_description") {
                            d.by_service.entry((host.clone(), s.to_string())).or_default().push(idx);
                        }
                    }
                }
            }
        }
        d
    }

    /// `contacts` and the members of `contact_groups`, once each, in order.
    fn contacts_of(&self, o: &Object) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        let direct = o.list("contacts").into_iter().filter_map(|c| self.contact_index.get(c).copied());
        let grouped = o
            .list("contact_groups")
            .into_iter()
            .filter_map(|g| self.groups.get(g))
            .flat_map(|m| m.iter().copied());
        for c in direct.chain(grouped) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    /// An item's notification settings from its definition.
    pub fn settings(&self, kind: ItemKind, o: &Object) -> NotifSettings {
        let default_options = match kind {
            ItemKind::Host => notify::HOST_OPTIONS_DEFAULT,
            ItemKind::Service => notify::SERVICE_OPTIONS_DEFAULT,
        };
        let all = match kind {
            ItemKind::Host => "durfs",
            ItemKind::Service => "wucrfs",
        };
        let mut escalations: Vec<u32> = o
            .list("escalations")
            .into_iter()
            .filter_map(|e| self.named.get(e).copied())
            .collect();
        let host = o.get("host_name").unwrap_or_default().to_string();
        let own = match kind {
            ItemKind::Host => self.by_host.get(&host),
            ItemKind::Service => self
                .by_service
                .get(&(host.clone(), o.get("service_description").unwrap_or_default().to_string())),
        };
        escalations.extend(own.into_iter().flatten().copied());
        NotifSettings {
            notifications_enabled: flag(o, "notifications_enabled", true),
            notification_interval: num(o, "notification_interval", 60.0).max(0.0),
            first_notification_delay: num(o, "first_notification_delay", 0.0).max(0.0),
            notification_options: Options::parse(o.get("notification_options").unwrap_or(default_options), all),
            notification_period: period(o, "notification_period"),
            contacts: self.contacts_of(o),
            escalations,
            business_impact: num(o, "business_impact", 2.0) as u32,
        }
    }
}

/// An item's flap detection settings (semantics §3.8): the item's values, the global ones where
/// it has -1. Quirk kept: hosts default to 25/50, so the global host thresholds only apply to a
/// host that sets -1; services default to -1.
pub fn flap_settings(kind: ItemKind, o: &Object, main: &shinken_config::main_config::MainConfig) -> notify::FlapSettings {
    let (opts, all, low_d, high_d, glow, ghigh) = match kind {
        ItemKind::Host => (
            "o,d,u",
            "odu",
            25.0,
            50.0,
            main.low_host_flap_threshold as f64,
            main.high_host_flap_threshold as f64,
        ),
        ItemKind::Service => (
            "o,w,c,u",
            "owcu",
            -1.0,
            -1.0,
            main.low_service_flap_threshold as f64,
            main.high_service_flap_threshold as f64,
        ),
    };
    let low = num(o, "low_flap_threshold", low_d);
    let high = num(o, "high_flap_threshold", high_d);
    notify::FlapSettings {
        enabled: flag(o, "flap_detection_enabled", true) && main.enable_flap_detection,
        options: Options::parse(o.get("flap_detection_options").unwrap_or(opts), all),
        low: if low < 0.0 { glow } else { low },
        high: if high < 0.0 { ghigh } else { high },
        history: main.flap_history as usize,
    }
}

/// Macros exported as environment variables with notifications (with `ENV_MACROS`).
const NOTIFICATION_ENV: &[&str] = &[
    "HOSTNAME",
    "HOSTADDRESS",
    "HOSTSTATE",
    "HOSTOUTPUT",
    "SERVICEDESC",
    "SERVICESTATE",
    "SERVICEOUTPUT",
    "NOTIFICATIONTYPE",
    "NOTIFICATIONNUMBER",
    "CONTACTNAME",
    "CONTACTEMAIL",
];

impl Engine {
    /// The view item-level rules take of item `i`.
    fn view(&self, i: u32) -> ItemView<'_> {
        let it = &self.items[i as usize];
        ItemView {
            state: &it.state,
            host: (it.kind == ItemKind::Service).then(|| &self.items[it.host as usize].state),
            settings: &it.notif,
            enable_notifications: self.settings.enable_notifications,
        }
    }

    /// Items holding masters, found again (after a restore or a new part).
    pub(super) fn find_masters(&mut self) {
        self.masters = (0..self.items.len() as u32)
            .filter(|&i| !self.items[i as usize].state.pending_notifications.is_empty())
            .collect();
    }

    /// `create_notifications`: a master notification of type `ty` for item `i`, unless not
    /// created at all (see [`notify::master_time`]).
    pub(super) fn raise_notification(&mut self, i: u32, ty: NotificationType, now: f64, _events: &mut Events) {
        let periods = &self.cfg.timeperiods;
        let view = self.view(i);
        let Some(t) = notify::master_time(&view, ty, now, self.settings.interval_length, periods) else {
            return;
        };
        let number = notify::master_number(view.state, ty);
        let id = self.next_check_id;
        self.next_check_id += 1;
        let st = &mut self.items[i as usize].state;
        if ty == NotificationType::Recovery {
            st.current_notification_number = 0;
        }
        st.current_notification_id = id;
        st.pending_notifications.push(PendingNotification {
            id,
            kind: ty.as_str().to_string(),
            t_to_go: t,
            number,
            contact: String::new(),
            creation_time: now,
            started_escalations: Vec::new(),
        });
        self.masters.insert(i);
        self.mark_dirty(i);
    }

    /// `remove_in_progress_notifications`: masters and not-yet-sent notifications of item `i`.
    pub(super) fn cancel_notifications(&mut self, i: u32) {
        let st = &mut self.items[i as usize].state;
        if !st.pending_notifications.is_empty() {
            st.pending_notifications.clear();
            self.mark_dirty(i);
        }
        self.masters.remove(&i);
        self.actions
            .retain(|_, a| !(a.item == i && a.out.is_none() && matches!(a.what, ActionWhat::Notification { .. })));
    }

    /// `get_event_handlers`: the event handler of item `i`, if enabled, as an action; logs
    /// `SERVICE EVENT HANDLER: ...`.
    pub(super) fn raise_event_handler(&mut self, i: u32, now: f64, events: &mut Events) {
        let it = &self.items[i as usize];
        let global = match it.kind {
            ItemKind::Host => self.settings.global_host_event_handler.as_deref(),
            ItemKind::Service => self.settings.global_service_event_handler.as_deref(),
        };
        let Some(call) = notify::event_handler(
            it.event_handler.as_deref(),
            global,
            it.event_handler_enabled,
            self.settings.enable_event_handlers,
            self.settings.no_event_handlers_during_downtimes,
            it.state.scheduled_downtime_depth > 0,
        )
        .map(str::to_string) else {
            return;
        };
        let r = self.resolve_command(i, &call, None, &HashMap::new(), ENV_MACROS, now);
        let st = &self.items[i as usize].state;
        let (h, s) = self.names(i);
        let line = notify::event_handler_log_line(&h, s.as_deref(), st.state, st.state_type, st.attempt, &r.name);
        let id = self.next_check_id;
        self.next_check_id += 1;
        self.actions.insert(
            id,
            Action {
                item: i,
                what: ActionWhat::EventHandler,
                command_line: r.command_line,
                timeout: r.timeout.unwrap_or(self.settings.event_handler_timeout),
                env: r.env,
                t_to_go: now,
                reactionner_tag: r.reactionner_tag,
                out: None,
            },
        );
        self.push_brok("log", serde_json::json!({ "log": line }));
        events.log.push(line);
    }

    /// Flap detection after a result (`changed`: the state differs from the last one): on an
    /// edge, the FLAPPING ALERT line, pending notifications cancelled, FLAPPINGSTART/STOP raised
    /// and a status brok.
    pub(super) fn flapping(&mut self, i: u32, changed: bool, now: f64, events: &mut Events) {
        let it = &mut self.items[i as usize];
        let Some(edge) = notify::update_flapping(&mut it.state, &it.flap, changed) else {
            return;
        };
        let (h, s) = self.names(i);
        let line = notify::flapping_log_line(&h, s.as_deref(), edge);
        self.push_brok("log", serde_json::json!({ "log": line }));
        events.log.push(line);
        self.cancel_notifications(i);
        let ty = match edge {
            notify::FlapEdge::Start(..) => NotificationType::FlappingStart,
            notify::FlapEdge::Stop(..) => NotificationType::FlappingStop,
        };
        self.raise_notification(i, ty, now, events);
        let kind = if self.items[i as usize].kind == ItemKind::Host {
            "update_host_status"
        } else {
            "update_service_status"
        };
        let data = self.status_json(i);
        self.push_brok(kind, data);
    }

    /// `scatter_master_notifications`: every due master becomes per-contact notifications
    /// (unless the item blocks it now); PROBLEM masters are re-armed.
    pub(super) fn scatter_due(&mut self, now: f64, events: &mut Events) {
        if self.masters.is_empty() {
            return;
        }
        let items: Vec<u32> = self.masters.iter().copied().collect();
        for i in items {
            let due: Vec<PendingNotification> = self.items[i as usize]
                .state
                .pending_notifications
                .iter()
                .filter(|m| m.t_to_go <= now)
                .cloned()
                .collect();
            for m in due {
                self.scatter_one(i, m, now, events);
            }
            if self.items[i as usize].state.pending_notifications.is_empty() {
                self.masters.remove(&i);
            }
        }
    }

    fn scatter_one(&mut self, i: u32, mut m: PendingNotification, now: f64, events: &mut Events) {
        let ty = NotificationType::parse(&m.kind).unwrap_or(NotificationType::Custom);
        let periods = &self.cfg.timeperiods;
        let interval_length = self.settings.interval_length;
        let view = self.view(i);
        let scattered = if notify::blocked_by_item(&view, ty, now, periods) {
            None
        } else {
            let inp = ScatterInput {
                view,
                master: &m,
                contacts: &self.contacts,
                escalations: &self.escalations,
                interval_length,
            };
            Some(notify::scatter(&inp, now, periods))
        };
        let produced = scattered.as_ref().is_some_and(|s| !s.children.is_empty());
        let (counter, fate) = notify::after_scatter(&view, &m, produced, &self.escalations, now, interval_length, periods);
        if let Some(sc) = scattered {
            let st = &mut self.items[i as usize].state;
            // RECOVERY clears the list; PROBLEM adds to it.
            if ty == NotificationType::Recovery || ty == NotificationType::Problem {
                st.notified_contacts = sc.notified_contacts.clone();
            }
            for e in &sc.started_escalations {
                if !m.started_escalations.contains(e) {
                    m.started_escalations.push(e.clone());
                }
            }
            if produced {
                self.items[i as usize].state.last_notification = now;
            }
            // Fresh counter for the children's macros.
            self.items[i as usize].state.current_notification_number = counter;
            for child in &sc.children {
                self.make_notification(i, ty, &m, child, now, events);
            }
        }
        let st = &mut self.items[i as usize].state;
        st.current_notification_number = counter;
        let pos = st.pending_notifications.iter().position(|p| p.id == m.id);
        match (fate, pos) {
            (MasterFate::Drop, Some(p)) => {
                st.pending_notifications.remove(p);
            }
            (MasterFate::Rearm { t_to_go, number }, Some(p)) => {
                m.t_to_go = t_to_go;
                m.number = number;
                st.pending_notifications[p] = m;
            }
            _ => {}
        }
        self.mark_dirty(i);
    }

    /// One per-contact notification: resolved, logged, queued for reactionners.
    fn make_notification(
        &mut self,
        i: u32,
        ty: NotificationType,
        m: &PendingNotification,
        child: &notify::Child,
        now: f64,
        events: &mut Events,
    ) {
        let Some(contact) = self.contacts.get(child.contact as usize) else {
            return;
        };
        let contact_name = contact.name.clone();
        let contact_obj = contact.obj;
        let it = &self.items[i as usize];
        let kind = it.kind;
        let mut rt: HashMap<String, String> = HashMap::new();
        rt.insert("NOTIFICATIONTYPE".into(), ty.as_str().into());
        rt.insert("NOTIFICATIONNUMBER".into(), m.number.to_string());
        let (num_key, id_key) = match kind {
            ItemKind::Host => ("HOSTNOTIFICATIONNUMBER", "HOSTNOTIFICATIONID"),
            ItemKind::Service => ("SERVICENOTIFICATIONNUMBER", "SERVICENOTIFICATIONID"),
        };
        rt.insert(num_key.into(), m.number.to_string());
        rt.insert(id_key.into(), m.id.to_string());
        rt.insert("NOTIFICATIONRECIPIENTS".into(), contact_name.clone());
        rt.insert("NOTIFICATIONISESCALATED".into(), u8::from(child.escalated).to_string());
        if let Some(ack) = it.state.acknowledgement.as_deref() {
            let p = if kind == ItemKind::Host { "HOST" } else { "SERVICE" };
            rt.insert(format!("{p}ACKAUTHOR"), ack.author.clone());
            rt.insert(format!("{p}ACKAUTHORNAME"), ack.author.clone());
            rt.insert(format!("{p}ACKCOMMENT"), ack.comment.clone());
            if ty == NotificationType::Acknowledgement {
                rt.insert("NOTIFICATIONAUTHOR".into(), ack.author.clone());
                rt.insert("NOTIFICATIONAUTHORNAME".into(), ack.author.clone());
                rt.insert("NOTIFICATIONCOMMENT".into(), ack.comment.clone());
            }
        }
        let mut env_names: Vec<&str> = ENV_MACROS.to_vec();
        env_names.extend(NOTIFICATION_ENV.iter().filter(|n| !ENV_MACROS.contains(n)));
        let r = self.resolve_command(i, &child.command, Some(contact_obj), &rt, &env_names, now);
        let st = &self.items[i as usize].state;
        let (h, s) = self.names(i);
        let line = notify::notification_log_line(&contact_name, &h, s.as_deref(), ty.as_str(), st.state, &r.name, &st.output);
        let brok = serde_json::json!({
            "contact_name": contact_name,
            "host_name": h,
            "service_description": s,
            "type": ty.as_str(),
            "state": st.state.as_str(),
            "command_name": r.name,
            "number": m.number,
            "escalated": child.escalated,
            "output": st.output,
            "time": now,
        });
        let id = self.next_check_id;
        self.next_check_id += 1;
        self.actions.insert(
            id,
            Action {
                item: i,
                what: ActionWhat::Notification {
                    ty,
                    contact: contact_name,
                    number: m.number,
                },
                command_line: r.command_line,
                timeout: r.timeout.unwrap_or(self.settings.notification_timeout),
                env: r.env,
                t_to_go: now,
                reactionner_tag: r.reactionner_tag,
                out: None,
            },
        );
        self.push_brok("log", serde_json::json!({ "log": line }));
        self.push_brok("notification_raise", brok);
        events.log.push(line);
    }

    /// Notifications and event handlers due, for a reactionner (exact tag match, as checks).
    pub(super) fn get_actions(&mut self, req: &GetChecks, now: f64, events: &mut Events) -> Vec<Job> {
        self.scatter_due(now, events);
        let limit = if req.max_actions == 0 {
            usize::MAX
        } else {
            req.max_actions as usize
        };
        let mut jobs = Vec::new();
        for (&id, a) in self.actions.iter_mut() {
            if jobs.len() >= limit {
                break;
            }
            if a.out.is_some() || a.t_to_go > now {
                continue;
            }
            let fits = match &a.reactionner_tag {
                None => req.tags.is_empty(),
                Some(t) => req.tags.iter().any(|x| x == t),
            };
            if !fits {
                continue;
            }
            a.out = Some((req.worker_name.clone(), now));
            jobs.push(Job {
                id,
                command_line: a.command_line.clone(),
                timeout: a.timeout,
                env: a.env.clone(),
                t_to_go: a.t_to_go,
            });
        }
        jobs
    }

    /// A reactionner's result, if `r` is one of the actions handed out (true), else false.
    pub(super) fn action_result(&mut self, r: &JobResult, now: f64, events: &mut Events) -> bool {
        let Some(a) = self.actions.get(&r.id) else { return false };
        if a.out.is_none() {
            return false;
        }
        let Some(a) = self.actions.remove(&r.id) else { return false };
        let kind = self.items[a.item as usize].kind;
        let what = if kind == ItemKind::Host { "host" } else { "service" };
        match &a.what {
            ActionWhat::Notification { contact, .. } => {
                if r.status == JobStatus::Timeout {
                    events.log.push(format!(
                        "Contact {contact} {what} notification command '{} ' timed out after {} seconds",
                        a.command_line, a.timeout
                    ));
                } else if r.exit_status != 0 {
                    events.log.push(format!(
                        "The notification command '{}' raised an error (exit code={}): '{}'",
                        a.command_line, r.exit_status, r.output
                    ));
                }
                // `last_notification`: when the command ran (Shinken's `check_time`).
                self.items[a.item as usize].state.last_notification = if r.start_time > 0.0 { r.start_time } else { now };
                self.mark_dirty(a.item);
            }
            ActionWhat::EventHandler => {
                if r.status == JobStatus::Timeout {
                    let w = if kind == ItemKind::Host { "Host" } else { "Service" };
                    events.log.push(format!(
                        "{w} event handler command '{} ' timed out after {} seconds",
                        a.command_line, a.timeout
                    ));
                }
            }
        }
        true
    }

    /// Actions handed out and not back within the item's `time_to_orphanage` (and their
    /// timeout) go back to the queue.
    pub(super) fn requeue_orphan_actions(&mut self, now: f64, events: &mut Events) {
        let mut by_worker: HashMap<String, usize> = HashMap::new();
        for a in self.actions.values_mut() {
            let Some((worker, at)) = &a.out else { continue };
            let ttl = self.items[a.item as usize].time_to_orphanage;
            if ttl > 0.0 && now - at > ttl.max(a.timeout as f64) {
                *by_worker.entry(worker.clone()).or_default() += 1;
                a.out = None;
            }
        }
        for (worker, n) in by_worker {
            events.log.push(format!(
                "{n} actions never came back for the satellite '{worker}'. I reenable them for polling"
            ));
        }
    }

    /// Notifications and event handlers waiting or handed out.
    pub fn actions_pending(&self) -> usize {
        self.actions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::GetChecks;
    use crate::scheduler::state::State;

    const T: f64 = 1_700_000_000.0;

    const CFG: &str = "
interval_length=1
max_service_check_spread=1
max_host_check_spread=1
global_service_event_handler=global-eh
define command {
    command_name check_dummy
    command_line /usr/lib/nagios/plugins/check_dummy $ARG1$
}
define command {
    command_name notify-mail
    command_line /bin/notify $NOTIFICATIONTYPE$ $CONTACTNAME$ $SERVICESTATE$ $SERVICENOTIFICATIONNUMBER$ $NOTIFICATIONCOMMENT$
}
define command {
    command_name notify-host
    command_line /bin/notify-host $NOTIFICATIONTYPE$ $CONTACTNAME$ $HOSTSTATE$
}
define command {
    command_name restart
    command_line /bin/restart $SERVICESTATE$ $SERVICESTATETYPE$ $SERVICEATTEMPT$
    reactionner_tag EH
}
define command {
    command_name global-eh
    command_line /bin/global $HOSTNAME$
}
define contact {
    contact_name admin
    email admin@example.com
    service_notification_commands notify-mail
    host_notification_commands notify-host
    service_notification_options w,u,c,r,f,s
    host_notification_options d,u,r,f,s
}
define contact {
    contact_name boss
    service_notification_commands notify-mail
    host_notification_commands notify-host
}
define contactgroup {
    contactgroup_name admins
    members admin
}
define host {
    host_name web
    check_command check_dummy!0
    check_interval 60
    max_check_attempts 1
    contact_groups admins
    notification_interval 0
}
define service {
    host_name web
    service_description HTTP
    check_command check_dummy!2
    check_interval 60
    retry_interval 10
    max_check_attempts 2
    contact_groups admins
    notification_interval 5
    event_handler restart
    event_handler_enabled 1
}
define service {
    host_name web
    service_description Global
    check_command check_dummy!2
    check_interval 60
    retry_interval 60
    max_check_attempts 1
    contacts admin
    event_handler_enabled 1
    notifications_enabled 0
}
define service {
    host_name web
    service_description Flappy
    check_command check_dummy!2
    check_interval 60
    retry_interval 60
    max_check_attempts 1
    contacts admin
    notification_interval 0
}
define serviceescalation {
    host_name web
    service_description HTTP
    first_notification 3
    last_notification 0
    contacts boss
}
";

    fn engine() -> Engine {
        let cfg = shinken_config::load::from_part_text(CFG);
        assert!(!cfg.has_errors(), "{:?}", cfg.diag.problems());
        Engine::new("sched", 0, 1, cfg, T, 3, None)
    }

    fn idx(e: &Engine, host: &str, svc: Option<&str>) -> u32 {
        match svc {
            None => e.hosts_by_name[host],
            Some(s) => e.services_by_name[&(host.to_string(), s.to_string())],
        }
    }

    /// Feeds a passive result (same consumption path as an active one).
    fn result(e: &mut Engine, svc: Option<&str>, code: u8, t: f64) -> Events {
        e.passive_result("web", svc, code, &format!("out {code}"), t, t).unwrap()
    }

    fn reactionner(e: &mut Engine, tags: &[&str], t: f64) -> (Vec<Job>, Events) {
        let req = GetChecks {
            do_actions: true,
            tags: tags.iter().map(|s| s.to_string()).collect(),
            worker_name: "r1".into(),
            ..Default::default()
        };
        e.get_checks(&req, t)
    }

    fn done(e: &mut Engine, jobs: &[Job], t: f64) {
        let results: Vec<JobResult> = jobs
            .iter()
            .map(|j| JobResult {
                id: j.id,
                status: JobStatus::Done,
                exit_status: 0,
                output: String::new(),
                long_output: String::new(),
                perf_data: String::new(),
                start_time: t,
                execution_time: 0.01,
            })
            .collect();
        let (rej, _) = e.put_results(&results, t);
        assert!(rej.is_empty());
    }

    fn lines(jobs: &[Job]) -> Vec<&str> {
        jobs.iter().map(|j| j.command_line.as_str()).collect()
    }

    #[test]
    fn problem_repeats_escalates_is_acknowledged_and_recovers() {
        let mut e = engine();
        result(&mut e, None, 0, T + 1.0);
        // SOFT: the event handler (tagged EH) runs, no notification.
        let ev = result(&mut e, Some("HTTP"), 2, T + 2.0);
        assert!(
            ev.log
                .contains(&"SERVICE EVENT HANDLER: web;HTTP;CRITICAL;SOFT;1;restart".to_string()),
            "{ev:?}"
        );
        let (jobs, _) = reactionner(&mut e, &[], T + 2.0);
        assert!(jobs.is_empty(), "untagged reactionners do not take EH: {jobs:?}");
        let (jobs, _) = reactionner(&mut e, &["EH"], T + 2.0);
        assert_eq!(lines(&jobs), ["/bin/restart CRITICAL SOFT 1"]);
        done(&mut e, &jobs, T + 2.0);
        // HARD: the event handler again, and PROBLEM #1 to the contact group's admin.
        result(&mut e, Some("HTTP"), 2, T + 3.0);
        let (jobs, ev) = reactionner(&mut e, &[], T + 3.0);
        assert_eq!(lines(&jobs), ["/bin/notify PROBLEM admin CRITICAL 1"]);
        assert_eq!(ev.log, ["SERVICE NOTIFICATION: admin;web;HTTP;CRITICAL;notify-mail;out 2"]);
        assert_eq!(e.find("web", Some("HTTP")).unwrap().current_notification_number, 1);
        assert_eq!(e.find("web", Some("HTTP")).unwrap().notified_contacts, ["admin"]);
        done(&mut e, &jobs, T + 3.0);
        // Nothing before notification_interval (5 s), #2 at +5.
        assert!(reactionner(&mut e, &[], T + 7.0).0.is_empty());
        let (jobs, _) = reactionner(&mut e, &[], T + 8.0);
        assert_eq!(lines(&jobs), ["/bin/notify PROBLEM admin CRITICAL 2"]);
        done(&mut e, &jobs, T + 8.0);
        // #3: the escalation replaces the contacts with boss.
        let (jobs, ev) = reactionner(&mut e, &[], T + 13.0);
        assert_eq!(lines(&jobs), ["/bin/notify PROBLEM boss CRITICAL 3"]);
        assert!(ev.log[0].starts_with("SERVICE NOTIFICATION: boss;web;HTTP;CRITICAL;"));
        done(&mut e, &jobs, T + 13.0);
        // Acknowledged: ACKNOWLEDGEMENT now, no more PROBLEM.
        e.run_external_line("[1] ACKNOWLEDGE_SVC_PROBLEM;web;HTTP;1;1;0;alice;on it", T + 14.0)
            .unwrap();
        let (jobs, ev) = reactionner(&mut e, &[], T + 14.0);
        assert_eq!(lines(&jobs), ["/bin/notify ACKNOWLEDGEMENT boss CRITICAL 3 on it"]);
        assert_eq!(
            ev.log,
            ["SERVICE NOTIFICATION: boss;web;HTTP;ACKNOWLEDGEMENT (CRITICAL);notify-mail;out 2"]
        );
        done(&mut e, &jobs, T + 14.0);
        for t in 15..40 {
            assert!(
                reactionner(&mut e, &[], T + t as f64).0.is_empty(),
                "no repeat while acknowledged (t+{t})"
            );
        }
        assert_eq!(e.find("web", Some("HTTP")).unwrap().current_notification_number, 3);
        // Recovery: only to who had the problem (admin, boss), the counter is reset.
        result(&mut e, Some("HTTP"), 0, T + 40.0);
        let (jobs, _) = reactionner(&mut e, &[], T + 40.0);
        let mut got = lines(&jobs);
        got.sort();
        assert_eq!(got, ["/bin/notify RECOVERY admin OK 0", "/bin/notify RECOVERY boss OK 0"]);
        let st = e.find("web", Some("HTTP")).unwrap();
        assert_eq!(st.current_notification_number, 0);
        assert!(st.notified_contacts.is_empty() && st.pending_notifications.is_empty());
        // The event handlers of the hard change and of the recovery.
        let (eh, _) = reactionner(&mut e, &["EH"], T + 40.0);
        assert_eq!(lines(&eh), ["/bin/restart CRITICAL HARD 2", "/bin/restart OK HARD 1"]);
    }

    #[test]
    fn downtimes_suppress_and_notify_their_start_and_end() {
        let mut e = engine();
        result(&mut e, None, 0, T + 1.0);
        result(&mut e, Some("HTTP"), 2, T + 2.0);
        result(&mut e, Some("HTTP"), 2, T + 3.0);
        let (jobs, _) = reactionner(&mut e, &[], T + 3.0);
        assert_eq!(jobs.len(), 1);
        done(&mut e, &jobs, T + 3.0);
        e.run_external_line(
            &format!(
                "[1] SCHEDULE_SVC_DOWNTIME;web;HTTP;{};{};1;0;0;alice;maintenance",
                T + 4.0,
                T + 20.0
            ),
            T + 4.0,
        )
        .unwrap();
        let (jobs, _) = reactionner(&mut e, &[], T + 4.0);
        assert_eq!(lines(&jobs), ["/bin/notify DOWNTIMESTART admin CRITICAL 1"]);
        done(&mut e, &jobs, T + 4.0);
        for t in 5..20 {
            e.tick(T + t as f64);
            assert!(
                reactionner(&mut e, &[], T + t as f64).0.is_empty(),
                "silent in the downtime (t+{t})"
            );
        }
        let ev = e.tick(T + 20.0);
        assert!(ev.log.iter().any(|l| l.starts_with("SERVICE DOWNTIME ALERT: web;HTTP;STOPPED;")));
        let (jobs, _) = reactionner(&mut e, &[], T + 20.0);
        assert_eq!(lines(&jobs), ["/bin/notify DOWNTIMEEND admin CRITICAL 1"]);
        done(&mut e, &jobs, T + 20.0);
        // The problem (re-armed every 5 s all along, still there) goes out again at its time.
        assert!(reactionner(&mut e, &[], T + 22.0).0.is_empty());
        let (jobs, _) = reactionner(&mut e, &[], T + 23.0);
        assert_eq!(lines(&jobs), ["/bin/notify PROBLEM admin CRITICAL 2"]);
    }

    #[test]
    fn a_down_host_silences_its_services_and_notifies_itself() {
        let mut e = engine();
        result(&mut e, None, 0, T + 0.5);
        result(&mut e, None, 2, T + 1.0);
        assert_eq!(e.find("web", None).unwrap().state, State::Down);
        let (jobs, ev) = reactionner(&mut e, &[], T + 1.0);
        assert_eq!(lines(&jobs), ["/bin/notify-host PROBLEM admin DOWN"]);
        assert_eq!(ev.log, ["HOST NOTIFICATION: admin;web;DOWN;notify-host;out 2"]);
        done(&mut e, &jobs, T + 1.0);
        result(&mut e, Some("HTTP"), 2, T + 2.0);
        result(&mut e, Some("HTTP"), 2, T + 3.0);
        assert_eq!(e.find("web", Some("HTTP")).unwrap().state_type, crate::scheduler::StateType::Hard);
        for t in 3..20 {
            assert!(
                reactionner(&mut e, &[], T + t as f64).0.is_empty(),
                "host down: no service notification"
            );
        }
        // Host notification_interval 0: notified once only.
        assert_eq!(e.find("web", None).unwrap().pending_notifications.len(), 0);
        // The host comes back: its recovery, then the service's problem goes out.
        result(&mut e, None, 0, T + 20.0);
        let (jobs, _) = reactionner(&mut e, &[], T + 20.0);
        assert_eq!(lines(&jobs), ["/bin/notify-host RECOVERY admin UP"]);
        // The service's problem master kept its 5 s rhythm while blocked: out at +23.
        let (jobs, _) = reactionner(&mut e, &[], T + 23.0);
        assert_eq!(lines(&jobs), ["/bin/notify PROBLEM admin CRITICAL 1"]);
    }

    #[test]
    fn global_event_handler_and_switches() {
        let mut e = engine();
        result(&mut e, None, 0, T + 1.0);
        result(&mut e, Some("Global"), 0, T + 1.5);
        // Global: no own handler, event_handler_enabled 1; notifications disabled on the item.
        let ev = result(&mut e, Some("Global"), 2, T + 2.0);
        assert!(
            ev.log
                .contains(&"SERVICE EVENT HANDLER: web;Global;CRITICAL;HARD;1;global-eh".to_string())
        );
        let (jobs, _) = reactionner(&mut e, &[], T + 2.0);
        assert_eq!(lines(&jobs), ["/bin/global web"], "the event handler only: notifications_enabled 0");
        // The global switch.
        let mut e = engine();
        e.settings.enable_event_handlers = false;
        result(&mut e, None, 0, T + 1.0);
        result(&mut e, Some("Global"), 0, T + 1.5);
        let ev = result(&mut e, Some("Global"), 2, T + 2.0);
        assert!(!ev.log.iter().any(|l| l.contains("EVENT HANDLER")));
        // enable_notifications off: a problem is not even created (no delay, but interval 5...).
        let mut e = engine();
        e.settings.enable_notifications = false;
        result(&mut e, None, 0, T + 1.0);
        result(&mut e, Some("HTTP"), 2, T + 2.0);
        result(&mut e, Some("HTTP"), 2, T + 3.0);
        for t in 3..10 {
            let (jobs, _) = reactionner(&mut e, &[], T + t as f64);
            assert!(jobs.iter().all(|j| !j.command_line.contains("notify")));
        }
    }

    #[test]
    fn actions_are_requeued_when_lost_and_results_for_them_are_accepted() {
        let mut e = engine();
        result(&mut e, None, 0, T + 0.5);
        result(&mut e, None, 2, T + 1.0);
        let (jobs, _) = reactionner(&mut e, &[], T + 1.0);
        assert_eq!(jobs.len(), 1);
        assert!(reactionner(&mut e, &[], T + 2.0).0.is_empty(), "handed out once");
        let ev = e.tick(T + 400.0);
        assert!(ev.log.iter().any(|l| l.contains("actions never came back for the satellite 'r1'")));
        let (again, _) = reactionner(&mut e, &[], T + 400.0);
        assert_eq!(again.len(), 1);
        done(&mut e, &again, T + 401.0);
        assert_eq!(e.actions_pending(), 0);
        assert_eq!(e.find("web", None).unwrap().last_notification, T + 401.0);
    }

    #[test]
    fn masters_survive_a_restore() {
        let mut e = engine();
        result(&mut e, None, 0, T + 1.0);
        result(&mut e, Some("HTTP"), 2, T + 2.0);
        result(&mut e, Some("HTTP"), 2, T + 3.0);
        let (jobs, _) = reactionner(&mut e, &[], T + 3.0);
        done(&mut e, &jobs, T + 3.0);
        let records: HashMap<String, crate::retention::Record> = e.all_records(T + 4.0).into_iter().map(|r| (r.key.clone(), r)).collect();
        let mut e2 = engine();
        assert_eq!(e2.restore(&records, T + 5.0), 4);
        let i = idx(&e2, "web", Some("HTTP"));
        assert_eq!(e2.items[i as usize].state.pending_notifications.len(), 1);
        result(&mut e2, None, 0, T + 5.0);
        let (jobs, _) = reactionner(&mut e2, &[], T + 8.0);
        assert_eq!(lines(&jobs), ["/bin/notify PROBLEM admin CRITICAL 2"], "the counter goes on");
    }

    #[test]
    fn flapping_starts_notifies_and_silences_problems() {
        let mut e = engine();
        result(&mut e, None, 0, T + 1.0);
        result(&mut e, Some("Flappy"), 0, T + 1.5);
        let mut sent: Vec<String> = Vec::new();
        let mut flap_line = None;
        for k in 0..24 {
            let t = T + 2.0 + k as f64;
            let ev = result(&mut e, Some("Flappy"), if k % 2 == 0 { 2 } else { 0 }, t);
            if let Some(l) = ev.log.iter().find(|l| l.contains("FLAPPING ALERT")) {
                flap_line.get_or_insert_with(|| (k, l.clone()));
            }
            let (jobs, _) = reactionner(&mut e, &[], t);
            sent.extend(jobs.iter().map(|j| j.command_line.clone()));
            done(&mut e, &jobs, t);
        }
        let (k, line) = flap_line.expect("flapping detected");
        assert!(
            line.starts_with("SERVICE FLAPPING ALERT: web;Flappy;STARTED; Service appears to have started flapping ("),
            "{line}"
        );
        // The window (20) fills at the 20th result counting the first OK.
        assert_eq!(k, 18);
        assert!(e.find("web", Some("Flappy")).unwrap().is_flapping);
        let start = sent.iter().position(|c| c.contains("FLAPPINGSTART")).expect("FLAPPINGSTART sent");
        assert!(
            sent[start + 1..].iter().all(|c| !c.contains("PROBLEM") && !c.contains("RECOVERY")),
            "silent while flapping: {sent:#?}"
        );
        assert!(sent[..start].iter().any(|c| c.contains("PROBLEM")), "{sent:#?}");
    }

    #[test]
    fn a_new_part_keeps_masters_and_actions() {
        let mut e = engine();
        result(&mut e, None, 0, T + 1.0);
        result(&mut e, Some("HTTP"), 2, T + 2.0);
        result(&mut e, Some("HTTP"), 2, T + 3.0);
        // Scattered (and the event handlers queued), nothing taken yet.
        e.tick(T + 3.0);
        let pending = e.actions_pending();
        assert!(pending >= 2, "{pending}");
        let cfg = shinken_config::load::from_part_text(CFG);
        let mut e2 = Engine::new("sched", 0, 2, cfg, T + 4.0, 1, Some(&e));
        assert_eq!(e2.actions_pending(), pending);
        let (jobs, _) = reactionner(&mut e2, &[], T + 4.0);
        assert_eq!(lines(&jobs), ["/bin/notify PROBLEM admin CRITICAL 1"]);
        done(&mut e2, &jobs, T + 4.0);
        let (jobs, _) = reactionner(&mut e2, &[], T + 8.0);
        assert_eq!(lines(&jobs), ["/bin/notify PROBLEM admin CRITICAL 2"], "the master kept its rhythm");
    }
}

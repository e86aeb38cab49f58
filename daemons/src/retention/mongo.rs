//! MongoDB retention through the official driver.
//!
//! Declared as in Shinken (semantics §4.5): `define module { module_name MongodbRetention;
//! module_type mongodb_retention; uri mongodb://...; database shinken }` (the 2020 type name
//! `retention_mongodb` too), listed in the scheduler's `modules`. Keys: `uri` (required, with its
//! `mongodb://` scheme), `database` (default `shinken`), `replica_set`, `hosts_collection_name`
//! (default `retention_hosts`), `services_collection_name` (default `retention_services`),
//! `epoch_collection_name` (default `retention_epoch`), `timeout` (seconds per operation,
//! default 5).
//!
//! Documents, as the 2020 module generation but readable: `{_id: <key>, epoch, value: <the
//! ItemState as a document>, timestamp}`. A save is one `update` command per batch of upserts
//! filtered on `{_id: key, epoch: {$lte: epoch}}`: a record held with a newer epoch does not
//! match, the upsert then collides with it on `_id` (duplicate key) and the write is refused;
//! nothing is ever overwritten by an older epoch. The arbiters' counter is the document
//! `{_id: "epoch", value}`, moved by compare-and-set so that it only grows and two arbiters never
//! get the same value.
//!
//! Every operation is bounded by the timeout: a MongoDB that is down or stopped is an error after
//! at most that long, never a hang.

use super::{Error, Record, Result, RetentionStore, SaveOutcome, is_service_key, unix_now};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};
use shinken_config::daemons::ModuleDef;
use std::collections::HashMap;
use std::future::IntoFuture;
use std::time::Duration;

/// Records per `update` command (well under MongoDB's 16 MiB and 100k statement limits).
const BATCH: usize = 500;
/// Keys per `find` on load.
const LOAD_BATCH: usize = 5000;
/// MongoDB's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;

/// A MongoDB database holding retention.
#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    hosts: String,
    services: String,
    epochs: String,
    timeout: Duration,
    /// `host:port,.../database`, without credentials, for logs.
    label: String,
}

impl MongoStore {
    /// From a module definition (see the module documentation for the keys).
    pub async fn from_module(m: &ModuleDef) -> Result<MongoStore> {
        let p = |k: &str| m.params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let uri = p("uri").ok_or_else(|| Error(format!("retention module '{}': uri is required", m.name)))?;
        let timeout = p("timeout")
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(5));
        let mut store = MongoStore::connect(uri, p("database").unwrap_or("shinken"), p("replica_set"), timeout)
            .await
            .map_err(|e| Error(format!("retention module '{}': {e}", m.name)))?;
        if let Some(h) = p("hosts_collection_name") {
            store.hosts = h.to_string();
        }
        if let Some(s) = p("services_collection_name") {
            store.services = s.to_string();
        }
        if let Some(e) = p("epoch_collection_name") {
            store.epochs = e.to_string();
        }
        Ok(store)
    }

    /// A client for `uri` (lazy: nothing is contacted yet).
    pub async fn connect(uri: &str, database: &str, replica_set: Option<&str>, timeout: Duration) -> Result<MongoStore> {
        if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
            return Err(Error(format!(
                "uri '{uri}' must start with mongodb:// (for example mongodb://localhost:27017); \
                 a bare host name is a common mistake (Shinken issue 1913)"
            )));
        }
        let mut opts = ClientOptions::parse(uri)
            .await
            .map_err(|e| Error(format!("bad uri '{}': {e}", redact(uri))))?;
        let short = timeout.min(Duration::from_secs(3));
        opts.server_selection_timeout = Some(short);
        opts.connect_timeout = Some(short);
        opts.app_name = Some("shinken-scheduler-retention".into());
        if let Some(rs) = replica_set
            && opts.repl_set_name.is_none()
        {
            opts.repl_set_name = Some(rs.to_string());
        }
        let hosts: Vec<String> = opts.hosts.iter().map(|h| h.to_string()).collect();
        let client = Client::with_options(opts).map_err(|e| Error(format!("bad uri '{}': {e}", redact(uri))))?;
        Ok(MongoStore {
            db: client.database(database),
            client,
            hosts: "retention_hosts".into(),
            services: "retention_services".into(),
            epochs: "retention_epoch".into(),
            timeout,
            label: format!("{}/{database}", hosts.join(",")),
        })
    }

    fn coll(&self, key: &str) -> &str {
        if is_service_key(key) { &self.services } else { &self.hosts }
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// Runs `op` within the timeout.
    async fn bounded<T>(&self, what: &str, op: impl IntoFuture<Output = mongodb::error::Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, op.into_future()).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error(format!("MongoDB {} {what}: {e}", self.label))),
            Err(_) => Err(Error(format!("MongoDB {} {what}: no answer within {:?}", self.label, self.timeout))),
        }
    }

    /// The driver's client (tests drop collections with it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn database(&self) -> &Database {
        &self.db
    }
}

/// `mongodb://user:pw@host` -> `mongodb://***@host`.
fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}***{}", &uri[..s + 3], &uri[a..]),
        _ => uri.to_string(),
    }
}

fn record_doc(r: &Record) -> Result<Document> {
    let value = bson::to_document(&r.state).map_err(|e| Error(format!("cannot encode the state of {}: {e}", r.key)))?;
    Ok(doc! { "epoch": r.epoch as i64, "value": value, "timestamp": r.saved_at })
}

fn record_from(d: &Document) -> Result<Record> {
    let key = d
        .get_str("_id")
        .map_err(|e| Error(format!("retention document without string _id: {e}")))?;
    let epoch = match d.get("epoch") {
        Some(Bson::Int64(v)) => *v as u64,
        Some(Bson::Int32(v)) => *v as u64,
        Some(Bson::Double(v)) => *v as u64,
        _ => 0,
    };
    let value = d
        .get_document("value")
        .map_err(|e| Error(format!("retention document {key}: no value document: {e}")))?;
    let state = bson::from_document(value.clone()).map_err(|e| Error(format!("retention document {key}: {e}")))?;
    let saved_at = d.get_f64("timestamp").unwrap_or(0.0);
    Ok(Record {
        key: key.to_string(),
        epoch,
        state,
        saved_at,
    })
}

fn as_u64(b: Option<&Bson>) -> Option<u64> {
    match b? {
        Bson::Int64(v) => Some(*v as u64),
        Bson::Int32(v) => Some(*v as u64),
        Bson::Double(v) => Some(*v as u64),
        _ => None,
    }
}

impl RetentionStore for MongoStore {
    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Record>> {
        let mut out = HashMap::with_capacity(keys.len());
        let (services, hosts): (Vec<&String>, Vec<&String>) = keys.iter().partition(|k| is_service_key(k));
        for (coll, keys) in [(&self.hosts, hosts), (&self.services, services)] {
            for chunk in keys.chunks(LOAD_BATCH) {
                let ids: Vec<&str> = chunk.iter().map(|k| k.as_str()).collect();
                let c = self.collection(coll);
                let docs = self
                    .bounded("load", async {
                        let mut cursor = c.find(doc! { "_id": { "$in": ids } }).await?;
                        let mut docs = Vec::new();
                        while cursor.advance().await? {
                            docs.push(cursor.deserialize_current()?);
                        }
                        Ok(docs)
                    })
                    .await?;
                for d in &docs {
                    let r = record_from(d)?;
                    out.insert(r.key.clone(), r);
                }
            }
        }
        Ok(out)
    }

    async fn save(&self, records: Vec<Record>, epoch: u64) -> Result<SaveOutcome> {
        let mut out = SaveOutcome::default();
        let now = unix_now();
        let mut by_coll: HashMap<String, Vec<Record>> = HashMap::new();
        for mut r in records {
            r.epoch = epoch;
            r.saved_at = now;
            by_coll.entry(self.coll(&r.key).to_string()).or_default().push(r);
        }
        for (coll, records) in by_coll {
            for chunk in records.chunks(BATCH) {
                let mut updates = Vec::with_capacity(chunk.len());
                for r in chunk {
                    updates.push(doc! {
                        "q": { "_id": &r.key, "epoch": { "$lte": epoch as i64 } },
                        "u": { "$set": record_doc(r)? },
                        "upsert": true,
                    });
                }
                let cmd = doc! { "update": &coll, "updates": updates, "ordered": false };
                let reply = self.bounded("save", self.db.run_command(cmd)).await?;
                let mut failed = vec![false; chunk.len()];
                if let Ok(errors) = reply.get_array("writeErrors") {
                    for e in errors {
                        let Some(e) = e.as_document() else { continue };
                        let index = as_u64(e.get("index")).unwrap_or(u64::MAX) as usize;
                        let code = as_u64(e.get("code")).unwrap_or(0) as i32;
                        let Some(r) = chunk.get(index) else { continue };
                        if code == DUPLICATE_KEY {
                            failed[index] = true;
                            out.refused_stale.push(r.key.clone());
                        } else {
                            let msg = e.get_str("errmsg").unwrap_or("unknown error");
                            return Err(Error(format!("MongoDB {} save of {}: {msg} (code {code})", self.label, r.key)));
                        }
                    }
                }
                if reply.get("ok").and_then(|v| as_u64(Some(v))) != Some(1) {
                    return Err(Error(format!("MongoDB {} save: {reply}", self.label)));
                }
                out.written += failed.iter().filter(|f| !**f).count();
            }
        }
        Ok(out)
    }

    async fn bump_epoch(&self, at_least: u64) -> Result<u64> {
        let c = self.collection(&self.epochs);
        loop {
            let current = self.bounded("epoch read", c.find_one(doc! { "_id": "epoch" })).await?;
            let value = current.as_ref().and_then(|d| as_u64(d.get("value")));
            let next = (value.unwrap_or(0) + 1).max(at_least);
            match value {
                None => match self
                    .bounded("epoch bump", c.insert_one(doc! { "_id": "epoch", "value": next as i64 }))
                    .await
                {
                    Ok(_) => return Ok(next),
                    // Another arbiter created it meanwhile: read again.
                    Err(e) if e.0.contains("E11000") || e.0.to_ascii_lowercase().contains("duplicate key") => continue,
                    Err(e) => return Err(e),
                },
                Some(v) => {
                    let r = self
                        .bounded(
                            "epoch bump",
                            c.update_one(
                                doc! { "_id": "epoch", "value": v as i64 },
                                doc! { "$max": { "value": next as i64 } },
                            ),
                        )
                        .await?;
                    if r.matched_count == 1 {
                        return Ok(next);
                    }
                }
            }
        }
    }

    async fn current_epoch(&self) -> Result<u64> {
        let c = self.collection(&self.epochs);
        let d = self.bounded("epoch read", c.find_one(doc! { "_id": "epoch" })).await?;
        Ok(d.as_ref().and_then(|d| as_u64(d.get("value"))).unwrap_or(0))
    }

    fn describe(&self) -> String {
        format!("mongodb {}", self.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_not_logged() {
        assert_eq!(redact("mongodb://u:pw@db1,db2/?x=1"), "mongodb://***@db1,db2/?x=1");
        assert_eq!(redact("mongodb://db1"), "mongodb://db1");
    }
}

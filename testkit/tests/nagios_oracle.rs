//! The generators produce configurations Nagios 4 accepts, with the counts they predict.
//! These tests fail (never skip) when nagios4 is not installed.

use shinken_testkit::r#gen::{scale, varied};
use shinken_testkit::{TempDir, nagios};

#[test]
fn nagios_accepts_varied_configs_with_expected_counts() {
    for seed in 0..8 {
        let dir = TempDir::new("tk-varied").unwrap();
        let generated = varied(dir.path(), seed).unwrap();
        let v = nagios::verify(&generated.main_cfg).expect("nagios4 must be installed");
        assert!(v.success, "seed {seed}: nagios4 -v failed:\n{}", v.output);
        assert_eq!((v.errors, v.warnings), (0, 0), "seed {seed}:\n{}", v.output);
        for kind in nagios::COUNTED_TYPES {
            assert_eq!(v.count(kind), generated.expected[kind], "seed {seed}: {kind}\n{}", v.output);
        }
    }
}

#[test]
fn precache_resolves_inheritance() {
    let dir = TempDir::new("tk-precache").unwrap();
    let generated = varied(dir.path(), 3).unwrap();
    let (v, objects) = nagios::precache(&generated.main_cfg).expect("nagios4 must be installed");
    assert_eq!(v.errors, 0, "{}", v.output);
    let hosts: Vec<_> = objects.iter().filter(|o| o.kind == "host").collect();
    assert_eq!(hosts.len() as u64, generated.expected["hosts"]);
    for h in &hosts {
        // Every host inherits from generic-host through two more levels.
        assert!(h.get("_PORT").is_some(), "{h:?}");
        assert!(h.get("_MAC_ADDRESS").is_some(), "{h:?}");
        assert_eq!(h.get("check_period"), Some("24x7"));
    }
    let services = objects.iter().filter(|o| o.kind == "service").count();
    assert_eq!(services as u64, generated.expected["services"]);
    let oncall = objects
        .iter()
        .find(|o| o.kind == "timeperiod" && o.get("timeperiod_name") == Some("oncall"))
        .unwrap();
    assert_eq!(oncall.get("day 10 - 20 / 3"), Some("01:00-02:00"));
    assert_eq!(oncall.get("exclude"), Some("us-holidays"));
}

#[test]
fn nagios_accepts_scale_config() {
    let dir = TempDir::new("tk-scale").unwrap();
    let main_cfg = scale(dir.path(), 1005).unwrap();
    let v = nagios::verify(&main_cfg).expect("nagios4 must be installed");
    assert_eq!((v.errors, v.warnings), (0, 0), "{}", v.output);
    assert_eq!(v.count("services"), 1005);
    assert_eq!(v.count("hosts"), 101);
    assert_eq!(v.count("host groups"), 8);
}

#[test]
fn missing_config_is_an_error() {
    let dir = TempDir::new("tk-missing").unwrap();
    let v = nagios::verify(&dir.path().join("nope.cfg")).expect("nagios4 must be installed");
    assert!(!v.success);
    assert!(v.errors >= 1, "{}", v.output);
}

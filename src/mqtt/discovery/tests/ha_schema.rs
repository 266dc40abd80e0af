//! Home Assistant's discovery schema per component (from
//! homeassistant/components/mqtt: schemas.py MQTT_ENTITY_COMMON_SCHEMA
//! and MQTT_AVAILABILITY_SCHEMA, config.py MQTT_RO_SCHEMA, and
//! binary_sensor.py, sensor.py, event.py), without abbreviations.

use super::*;

const COMMON: &[&str] = &[
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "payload_available",
    "payload_not_available",
    "device",
    "origin",
    "enabled_by_default",
    "entity_category",
    "entity_picture",
    "icon",
    "json_attributes_topic",
    "json_attributes_template",
    "object_id",
    "default_entity_id",
    "unique_id",
    "name",
    "qos",
    "encoding",
    "state_topic",
    "value_template",
    "platform",
];
const BINARY_SENSOR: &[&str] = &[
    "device_class",
    "expire_after",
    "force_update",
    "off_delay",
    "payload_on",
    "payload_off",
];
const SENSOR: &[&str] = &[
    "device_class",
    "state_class",
    "unit_of_measurement",
    "suggested_display_precision",
    "expire_after",
    "force_update",
    "last_reset_value_template",
    "options",
];
const EVENT: &[&str] = &["device_class", "event_types"];
const DEVICE: &[&str] = &[
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "hw_version",
    "serial_number",
    "sw_version",
    "via_device",
    "suggested_area",
    "configuration_url",
];
const BINARY_SENSOR_CLASSES: &[&str] = &[
    "battery",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "door",
    "garage_door",
    "gas",
    "heat",
    "light",
    "lock",
    "moisture",
    "motion",
    "moving",
    "occupancy",
    "opening",
    "plug",
    "power",
    "presence",
    "problem",
    "running",
    "safety",
    "smoke",
    "sound",
    "tamper",
    "update",
    "vibration",
    "window",
];
const DURATION_UNITS: &[&str] = &["d", "h", "min", "s", "ms", "µs"];

/// Checks one config; returns its component.
pub(super) fn check(topic: &str, config: &Value) -> String {
    let parts: Vec<&str> = topic.split('/').collect();
    let [prefix, component, node, object, "config"] = parts[..] else {
        panic!("{topic}: not <prefix>/<component>/<node>/<object>/config")
    };
    assert_eq!(prefix, DEFAULT_DISCOVERY_PREFIX);
    for id in [node, object] {
        assert!(
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{topic}: node/object id {id:?}"
        );
    }
    let obj = config
        .as_object()
        .unwrap_or_else(|| panic!("{topic}: not an object"));
    let specific = match component {
        "binary_sensor" => BINARY_SENSOR,
        "sensor" => SENSOR,
        "event" => EVENT,
        other => panic!("{topic}: component {other} not validated"),
    };
    for key in obj.keys() {
        assert!(
            COMMON.contains(&key.as_str()) || specific.contains(&key.as_str()),
            "{topic}: key {key} is not in HA's {component} schema"
        );
    }
    let string = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{topic}: {k} must be a string"))
    };
    // Required by HA (state_topic for all three, event_types for
    // event) and by us (unique_id, device, availability).
    let state_topic = string("state_topic");
    assert!(
        !state_topic.contains(['+', '#']),
        "{topic}: wildcard in state_topic"
    );
    assert_eq!(
        string("unique_id"),
        object,
        "{topic}: unique_id = object id"
    );
    assert_eq!(string("default_entity_id"), format!("{component}.{object}"));
    assert!(!string("name").is_empty());
    assert!(!string("availability_topic").contains(['+', '#']));
    assert_eq!(
        (string("payload_available"), string("payload_not_available")),
        ("online", "offline")
    );
    let origin = obj["origin"].as_object().expect("origin object");
    assert!(origin["name"].is_string(), "{topic}: origin needs a name");
    let device = obj["device"].as_object().expect("device object");
    for key in device.keys() {
        assert!(DEVICE.contains(&key.as_str()), "{topic}: device key {key}");
    }
    let ids = device["identifiers"].as_array().expect("identifiers list");
    assert!(
        !ids.is_empty() && ids.iter().all(Value::is_string),
        "{topic}: identifiers"
    );
    if let Some(icon) = obj.get("icon") {
        assert!(
            icon.as_str().is_some_and(|i| i.starts_with("mdi:")),
            "{topic}: icon"
        );
    }
    if let Some(cat) = obj.get("entity_category") {
        assert!(
            matches!(cat.as_str(), Some("config" | "diagnostic")),
            "{topic}: entity_category"
        );
    }
    match component {
        "binary_sensor" => {
            if let Some(dc) = obj.get("device_class") {
                assert!(
                    BINARY_SENSOR_CLASSES.contains(&dc.as_str().unwrap_or("")),
                    "{topic}: {dc}"
                );
            }
        }
        "sensor" => match obj.get("device_class").and_then(Value::as_str) {
            Some("enum") => {
                let options = obj["options"]
                    .as_array()
                    .expect("enum sensor needs options");
                assert!(!options.is_empty() && options.iter().all(Value::is_string));
                assert!(
                    obj.get("state_class").is_none() && obj.get("unit_of_measurement").is_none(),
                    "{topic}: an enum sensor has no state_class or unit"
                );
            }
            Some("duration") => {
                assert!(
                    DURATION_UNITS.contains(&string("unit_of_measurement")),
                    "{topic}: unit"
                );
                assert!(obj.get("options").is_none());
            }
            None => {
                assert!(obj.get("options").is_none() && obj.get("unit_of_measurement").is_none())
            }
            Some(other) => panic!("{topic}: device_class {other} not validated"),
        },
        "event" => {
            let types = obj["event_types"].as_array().expect("event_types required");
            assert!(!types.is_empty() && types.iter().all(Value::is_string));
        }
        _ => unreachable!(),
    }
    if let Some(sc) = obj.get("state_class") {
        assert!(
            matches!(
                sc.as_str(),
                Some("measurement" | "total" | "total_increasing")
            ),
            "{topic}: state_class"
        );
    }
    component.to_string()
}

/// Checks the whole retained picture: every config, its device
/// links, and that each state is one the entity accepts.
pub(super) fn check_all(broker: &BTreeMap<String, Vec<u8>>) {
    let configs: Vec<(String, Value)> = broker
        .iter()
        .filter(|(t, _)| t.starts_with(&format!("{DEFAULT_DISCOVERY_PREFIX}/")))
        .map(|(t, p)| {
            (
                t.clone(),
                serde_json::from_slice(p).expect("config is JSON"),
            )
        })
        .collect();
    assert!(!configs.is_empty());
    let mut unique_ids = BTreeSet::new();
    let mut devices = BTreeSet::new();
    for (_, c) in &configs {
        devices.insert(c["device"]["identifiers"][0].as_str().unwrap().to_string());
    }
    for (topic, c) in &configs {
        let component = check(topic, c);
        assert!(
            unique_ids.insert(c["unique_id"].as_str().unwrap().to_string()),
            "duplicate unique_id"
        );
        if let Some(via) = c["device"].get("via_device") {
            assert!(
                devices.contains(via.as_str().unwrap()),
                "{topic}: via_device {via} unknown"
            );
        }
        let state_topic = c["state_topic"].as_str().unwrap();
        if component == "event" {
            assert!(
                !broker.contains_key(state_topic),
                "{topic}: events are not retained"
            );
            continue;
        }
        let state = broker
            .get(state_topic)
            .map(|s| String::from_utf8(s.clone()).unwrap())
            .unwrap_or_else(|| panic!("{topic}: no retained state on {state_topic}"));
        match component.as_str() {
            "binary_sensor" => assert!(
                state == c["payload_on"].as_str().unwrap()
                    || state == c["payload_off"].as_str().unwrap(),
                "{topic}: state {state}"
            ),
            _ => match c.get("device_class").and_then(Value::as_str) {
                Some("enum") => assert!(
                    c["options"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|o| o == state.as_str()),
                    "{topic}: {state} not in options"
                ),
                Some("duration") | None if c.get("state_class").is_some() => assert!(
                    state == "None" || state.parse::<f64>().is_ok(),
                    "{topic}: {state} is not numeric"
                ),
                _ => {}
            },
        }
        if let Some(attrs) = c.get("json_attributes_topic") {
            let a: Value = serde_json::from_slice(&broker[attrs.as_str().unwrap()]).unwrap();
            assert!(a.is_object(), "{topic}: attributes must be a JSON object");
        }
    }
}

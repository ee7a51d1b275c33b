//! Config values the engine's own settings are read with: durations like
//! "60s" and shares between 0 and 1, each refused with what was meant.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration like \"60s\" or \"30d\": {e}"
        ))
    })
}

pub fn share<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "{v} is not a share: write it between 0 and 1 (0.05 means 5 %)"
        )));
    }
    Ok(v)
}

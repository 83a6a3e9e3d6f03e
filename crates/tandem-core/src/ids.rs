//! Globally unique identifiers. Regions must be able to merge their change logs later, so no
//! region-local counter may leak into an ID. Randomness is passed in: the core does no IO.

/// MLflow's default experiment, the one exception: every workspace has its own "0".
pub const DEFAULT_EXPERIMENT_ID: &str = "0";

/// A 32-hex-digit run ID, like MLflow's uuid4 hex.
pub fn run_id(random: [u8; 16]) -> String {
    hex(&random)
}

/// Experiment IDs stay numeric (clients and UIs parse them as integers): 41 bits of
/// milliseconds then 22 random bits, so they sort by creation time and two regions creating
/// experiments in the same millisecond collide with probability 2^-22 (checked on insert).
pub fn experiment_id(wall_ms: u64, random: u32) -> String {
    let id = ((wall_ms & ((1 << 41) - 1)) << 22) | (random as u64 & ((1 << 22) - 1));
    id.max(1).to_string()
}

/// MLflow 3 logged-model IDs: `m-` followed by 32 hex digits.
pub fn logged_model_id(random: [u8; 16]) -> String {
    format!("m-{}", hex(&random))
}

/// Dataset IDs, like MLflow's uuid4 hex.
pub fn dataset_id(random: [u8; 16]) -> String {
    hex(&random)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

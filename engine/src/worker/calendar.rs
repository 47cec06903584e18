//! UTC calendar of Unix times: absolute clock hours and days, hour of
//! day and day of week (the slots workers are learned by).

/// `floor(t / 3600)`: the absolute clock hour of a Unix time.
pub fn hour_index(t: f64) -> i64 {
    (t / 3600.0).floor() as i64
}

/// `floor(t / 86400)`: the absolute UTC day of a Unix time.
pub fn day_index(t: f64) -> i64 {
    (t / 86_400.0).floor() as i64
}

/// UTC hour of day, 0..23.
pub fn hour_of_day(t: f64) -> u8 {
    hour_index(t).rem_euclid(24) as u8
}

/// UTC day of week, 0 = Monday .. 6 = Sunday (1970-01-01 was a Thursday).
pub fn day_of_week(t: f64) -> u8 {
    (day_index(t) + 3).rem_euclid(7) as u8
}

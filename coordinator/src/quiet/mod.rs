//! The quiet engine: quiet score, state with hysteresis, streaks, forecast.

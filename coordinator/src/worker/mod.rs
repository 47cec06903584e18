//! Worker execution reports: scoring, learning, anomalies, missed runs.

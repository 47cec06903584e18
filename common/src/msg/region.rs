//! Region build and fatigue reports and the campaign stats JSON (seeds 000, 001).

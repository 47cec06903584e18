//! Build-region health: aggregates, fatigue, outlaws, selection, insights.

//! Tests of maintenance windows: recurrence across the week boundary and
//! across daylight saving changes (Europe/Berlin), one-off windows, merging.

use super::*;

const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;
/// Sunday 2026-03-22 00:00:00 UTC (a week before Berlin springs forward).
const SUN_MAR_22: f64 = 1_774_137_600.0;
/// Sunday 2026-03-29 00:00:00 UTC: Berlin goes from 02:00 CET to 03:00 CEST.
const SUN_MAR_29: f64 = 1_774_742_400.0;
/// Sunday 2026-10-25 00:00:00 UTC: Berlin goes from 03:00 CEST to 02:00 CET.
const SUN_OCT_25: f64 = 1_792_886_400.0;

fn berlin() -> TimeZone {
    TimeZone::get("Europe/Berlin").unwrap()
}

fn weekly(days: &[Weekday], at: &str, duration_sec: f64, tz: &str) -> Weekly {
    let r = Recurrence {
        days: days.to_vec(),
        at: at.into(),
        duration_sec,
        tz: tz.into(),
    };
    Weekly::new(&r, TimeZone::get(tz).unwrap()).unwrap()
}

fn window(w: Option<Weekly>, from: f64, until: Option<f64>) -> Window {
    Window {
        id: 1,
        reason: Some("patching".into()),
        from,
        until,
        weekly: w,
        created_at: from,
    }
}

#[test]
fn a_sunday_night_window_spans_the_week_boundary() {
    // Sunday 22:00 UTC for 4 h: open until Monday 02:00.
    let w = window(
        Some(weekly(&[Weekday::Sun], "22:00", 4.0 * HOUR, "UTC")),
        0.0,
        None,
    );
    let sun_22 = SUN_MAR_22 + 22.0 * HOUR;
    assert_eq!(w.at(sun_22 - 1.0), None);
    assert_eq!(w.at(sun_22), Some((sun_22, sun_22 + 4.0 * HOUR)));
    // Monday 01:00, after the week turned: the Sunday opening still holds.
    assert_eq!(
        w.at(sun_22 + 3.0 * HOUR),
        Some((sun_22, sun_22 + 4.0 * HOUR))
    );
    assert_eq!(w.at(sun_22 + 4.0 * HOUR), None);
    // The next one is a week later; the next change from Monday 03:00 too.
    let after = sun_22 + 5.0 * HOUR;
    assert_eq!(
        w.current_or_next(after),
        Some((sun_22 + 7.0 * DAY, sun_22 + 7.0 * DAY + 4.0 * HOUR))
    );
    assert_eq!(w.next_change(after), Some(sun_22 + 7.0 * DAY));
    assert_eq!(w.next_change(sun_22 + HOUR), Some(sun_22 + 4.0 * HOUR));
}

#[test]
fn berlin_spring_forward_keeps_the_local_opening_time() {
    // Sundays 01:00 Berlin time for 3 h.
    let w = window(
        Some(weekly(
            &[Weekday::Sun],
            "01:00",
            3.0 * HOUR,
            "Europe/Berlin",
        )),
        0.0,
        None,
    );
    // 22 March (CET, UTC+1): opens 00:00 UTC.
    assert_eq!(
        w.at(SUN_MAR_22 + 60.0),
        Some((SUN_MAR_22, SUN_MAR_22 + 3.0 * HOUR))
    );
    // 29 March, the night of the change: 01:00 is still CET (00:00 UTC);
    // three elapsed hours later it is 05:00 CEST.
    let open = w.at(SUN_MAR_29 + 60.0).unwrap();
    assert_eq!(open, (SUN_MAR_29, SUN_MAR_29 + 3.0 * HOUR));
    // 5 April (CEST, UTC+2): 01:00 local is 23:00 UTC on Saturday.
    let next = w.current_or_next(SUN_MAR_29 + 4.0 * HOUR).unwrap();
    assert_eq!(next.0, SUN_MAR_29 + 7.0 * DAY - HOUR);
    assert_eq!(w.at(next.0 - 1.0), None);
    assert!(w.at(next.0).is_some());
}

#[test]
fn a_local_time_in_the_gap_opens_after_it_and_a_fold_at_its_first_time() {
    // 02:30 does not exist in Berlin on 29 March 2026: it opens at 03:30
    // CEST = 01:30 UTC.
    let w = window(
        Some(weekly(&[Weekday::Sun], "02:30", HOUR, "Europe/Berlin")),
        0.0,
        None,
    );
    let gap = w.current_or_next(SUN_MAR_29).unwrap();
    assert_eq!(gap, (SUN_MAR_29 + 1.5 * HOUR, SUN_MAR_29 + 2.5 * HOUR));
    // 02:30 happens twice on 25 October: the first, CEST = 00:30 UTC.
    let fold = w.current_or_next(SUN_OCT_25).unwrap();
    assert_eq!(fold, (SUN_OCT_25 + 0.5 * HOUR, SUN_OCT_25 + 1.5 * HOUR));
    // A week later (CET, UTC+1) it is 01:30 UTC.
    let after = w.current_or_next(SUN_OCT_25 + 2.0 * HOUR).unwrap();
    assert_eq!(after.0, SUN_OCT_25 + 7.0 * DAY + 1.5 * HOUR);
}

#[test]
fn autumn_back_shifts_the_utc_opening_by_an_hour() {
    // Saturdays 23:00 Berlin for 4 h, across the October change.
    let w = window(
        Some(weekly(
            &[Weekday::Sat],
            "23:00",
            4.0 * HOUR,
            "Europe/Berlin",
        )),
        0.0,
        None,
    );
    // Sat 24 Oct 23:00 CEST = 21:00 UTC.
    let sat = SUN_OCT_25 - 3.0 * HOUR;
    assert_eq!(w.at(sat), Some((sat, sat + 4.0 * HOUR)));
    // Sat 31 Oct 23:00 CET = 22:00 UTC.
    let next = w.current_or_next(sat + 4.0 * HOUR).unwrap();
    assert_eq!(next.0, sat + 7.0 * DAY + HOUR);
}

#[test]
fn every_day_and_several_days_and_the_wire_form() {
    let w = weekly(&[], "12:00", HOUR, "UTC");
    let spans = window(Some(w.clone()), 0.0, None).spans(SUN_MAR_22, SUN_MAR_22 + 3.0 * DAY);
    assert_eq!(spans.len(), 3);
    assert_eq!(w.recurrence().days, Vec::<Weekday>::new());
    let w = weekly(
        &[Weekday::Mon, Weekday::Wed],
        "08:05",
        HOUR,
        "Europe/Berlin",
    );
    let r = w.recurrence();
    assert_eq!(r.days, vec![Weekday::Mon, Weekday::Wed]);
    assert_eq!((r.at.as_str(), r.tz.as_str()), ("08:05", "Europe/Berlin"));
    let spans = window(Some(w), 0.0, None).spans(SUN_MAR_22, SUN_MAR_22 + 7.0 * DAY);
    let days: Vec<f64> = spans
        .iter()
        .map(|s| ((s.0 - SUN_MAR_22) / DAY).floor())
        .collect();
    assert_eq!(days, vec![1.0, 3.0]);
    let bad = Recurrence {
        days: vec![],
        at: "25:00".into(),
        duration_sec: 60.0,
        tz: "UTC".into(),
    };
    assert!(Weekly::new(&bad, TimeZone::UTC).is_err());
}

#[test]
fn recurrence_is_clipped_to_from_and_until() {
    let w = weekly(&[], "00:00", 6.0 * HOUR, "UTC");
    // Added at 02:00 during an opening: in force from then.
    let win = window(
        Some(w.clone()),
        SUN_MAR_22 + 2.0 * HOUR,
        Some(SUN_MAR_22 + DAY + 3.0 * HOUR),
    );
    assert_eq!(
        win.at(SUN_MAR_22 + 2.0 * HOUR),
        Some((SUN_MAR_22 + 2.0 * HOUR, SUN_MAR_22 + 6.0 * HOUR))
    );
    assert_eq!(win.at(SUN_MAR_22 + HOUR), None);
    // The last opening is cut at until; after it nothing is left.
    assert_eq!(
        win.current_or_next(SUN_MAR_22 + 7.0 * HOUR),
        Some((SUN_MAR_22 + DAY, SUN_MAR_22 + DAY + 3.0 * HOUR))
    );
    assert_eq!(win.current_or_next(SUN_MAR_22 + DAY + 3.0 * HOUR), None);
    assert!(!win.over(SUN_MAR_22 + DAY));
    assert!(win.over(SUN_MAR_22 + DAY + 3.0 * HOUR));
}

#[test]
fn one_off_windows_start_later_and_may_have_no_end() {
    let w = window(None, 1000.0, Some(2000.0));
    assert_eq!(w.at(999.0), None);
    assert_eq!(w.at(1000.0), Some((1000.0, 2000.0)));
    assert_eq!(w.next_change(500.0), Some(1000.0));
    assert_eq!(w.next_change(1500.0), Some(2000.0));
    assert_eq!(w.at(2000.0), None);
    let open = window(None, 1000.0, None);
    assert_eq!(open.at(5e9), Some((1000.0, f64::INFINITY)));
    assert_eq!(open.next_change(5e9), None);
    assert!(!open.over(5e9));
    assert_eq!(berlin().iana_name(), Some("Europe/Berlin"));
}

#[test]
fn merge_joins_overlapping_and_touching_spans() {
    assert_eq!(
        merge(vec![
            (5.0, 6.0),
            (1.0, 3.0),
            (2.0, 4.0),
            (4.0, 4.5),
            (7.0, 8.0)
        ]),
        vec![(1.0, 4.5), (5.0, 6.0), (7.0, 8.0)]
    );
    assert_eq!(merge(vec![]), vec![]);
}

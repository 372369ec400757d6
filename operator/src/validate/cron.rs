//! The schedule of `spec.backup`, checked as the CronJob controller reads
//! it: five fields (minute, hour, day of month, month, day of week), each a
//! comma list of `*`, a value or a range, with an optional `/step`; month
//! and day names; or one of the `@` macros.

/// Why a schedule is not one, naming the field.
pub fn check(schedule: &str) -> Result<(), String> {
    const MACROS: &[&str] = &[
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    let schedule = schedule.trim();
    if schedule.starts_with('@') {
        return if MACROS.contains(&schedule) {
            Ok(())
        } else {
            Err(format!("{schedule:?} is not one of {}", MACROS.join(", ")))
        };
    }
    const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
        ("minute", 0, 59, &[]),
        ("hour", 0, 23, &[]),
        ("day of month", 1, 31, &[]),
        (
            "month",
            1,
            12,
            &[
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ],
        ),
        (
            "day of week",
            0,
            7,
            &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
        ),
    ];
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        return Err(format!(
            "{schedule:?} has {} fields; a schedule has five: minute hour day-of-month month day-of-week",
            fields.len()
        ));
    }
    for (text, (what, min, max, names)) in fields.iter().zip(FIELDS) {
        for part in text.split(',') {
            part_ok(part, min, max, names).map_err(|e| format!("{what} field {text:?}: {e}"))?;
        }
    }
    Ok(())
}

fn part_ok(part: &str, min: u32, max: u32, names: &[&str]) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (part, None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(n) if n >= 1 && n <= max.max(1) => {}
            _ => return Err(format!("step {step:?} must be a number from 1 to {max}")),
        }
    }
    if range == "*" || range == "?" {
        return Ok(());
    }
    let value = |v: &str| -> Result<u32, String> {
        let lower = v.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            // Month names count from 1, day names from 0.
            return Ok(u32::try_from(i).unwrap_or(0) + min);
        }
        match v.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("{v:?} is not a value from {min} to {max}")),
        }
    };
    match range.split_once('-') {
        Some((low, high)) => {
            let (low, high) = (value(low)?, value(high)?);
            if low > high {
                return Err(format!("range {range:?} runs backwards"));
            }
            Ok(())
        }
        None => value(range).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn schedules_the_cron_job_controller_accepts_pass() {
        for schedule in [
            "15 3 * * *",
            "*/30 * * * *",
            "0 0-6/2 1,15 jan-mar mon-fri",
            "0 4 * * 7",
            "@daily",
        ] {
            assert_eq!(check(schedule), Ok(()), "{schedule}");
        }
    }

    #[test]
    fn a_bad_schedule_names_its_field() {
        let error = |s: &str| check(s).expect_err(s);
        assert!(error("61 * * * *").contains("minute field"));
        assert!(error("0 24 * * *").contains("hour field"));
        assert!(error("0 0 0 * *").contains("day of month field"));
        assert!(error("0 0 * 13 *").contains("month field"));
        assert!(error("0 0 * * 5-1").contains("runs backwards"));
        assert!(error("*/0 * * * *").contains("step"));
        assert!(error("0 0 * *").contains("five"));
        assert!(error("@sometimes").contains("@daily"));
    }
}

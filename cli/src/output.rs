//! How the operator commands print: an aligned table for people by default, one JSON document
//! with `--json` for scripts (the same rows, every field, stable names), and the confirmation an
//! irreversible command asks for. Nothing here prints a payload or a body: callers build rows
//! from lifecycle fields only.

use std::io::IsTerminal as _;

use anyhow::bail;
use serde::Serialize;

/// Prints `rows` as a JSON array (`json`), or as a table under `headers` with `cells` of each
/// row; `empty` (to stderr) when there are none, so a table on stdout stays parseable.
pub fn print<T: Serialize>(
    json: bool,
    headers: &[&str],
    rows: &[T],
    cells: impl Fn(&T) -> Vec<String>,
    empty: &str,
) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("{empty}");
        return Ok(());
    }
    let body: Vec<Vec<String>> = rows.iter().map(cells).collect();
    out!("{}", table(headers, &body));
    Ok(())
}

/// An aligned text table: columns padded to their widest cell, two spaces apart, the last one
/// unpadded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    (*c).to_owned()
                } else {
                    format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut lines = vec![line(headers.to_vec())];
    lines.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    lines.join("\n")
}

/// Milliseconds since the epoch as UTC `YYYY-MM-DDTHH:MM:SSZ`; `-` for none.
pub fn time(ms: Option<i64>) -> String {
    let Some(ms) = ms.filter(|ms| *ms > 0) else {
        return "-".to_owned();
    };
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `ago` before now, in ms since the epoch (for `--since`).
pub fn since_ms(ago: std::time::Duration) -> i64 {
    hookline::clock::system()
        .now_millis()
        .saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX))
}

/// Asks `question` on a terminal; `yes` (`--yes`) answers it. Refuses when stdin is not a
/// terminal and `--yes` was not given: a script must say what it means.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question}: refusing without --yes (stdin is not a terminal)");
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(time(Some(1_750_000_000_000)), "2025-06-15T15:06:40Z");
        assert_eq!(time(Some(951_782_400_000)), "2000-02-29T00:00:00Z");
        assert_eq!(time(None), "-");
        assert_eq!(time(Some(0)), "-");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["w".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\nw    22");
    }
}

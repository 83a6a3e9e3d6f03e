//! How strongly two trace filters go together: normalized pointwise mutual information
//! (NPMI) over the 2x2 table of their counts, as MLflow's trace analysis computes it
//! (mlflow/store/analytics/trace_correlation.py), so that the UI's correlation view reads the
//! same numbers from tandem.

/// The Jeffreys prior MLflow smooths with.
const JEFFREYS_PRIOR: f64 = 0.5;

/// The unsmoothed and the smoothed NPMI of two filters, from the traces matching both
/// (`joint`), each (`first`, `second`) and all of them (`total`); None where NPMI is undefined
/// (no trace, or a filter nothing matches).
pub fn npmi(joint: i64, first: i64, second: i64, total: i64) -> (Option<f64>, Option<f64>) {
    if total <= 0 || first == 0 || second == 0 {
        return (None, None);
    }
    let n11 = joint as f64;
    let n10 = (first - joint) as f64;
    let n01 = (second - joint) as f64;
    let n00 = (total - first - second + joint) as f64;
    if n11.min(n10).min(n01).min(n00) < 0.0 {
        return (None, None);
    }
    let unsmoothed = if joint == 0 {
        Some(-1.0)
    } else {
        core(n11, n10, n01, n00, 0.0)
    };
    (unsmoothed, core(n11, n10, n01, n00, JEFFREYS_PRIOR))
}

fn core(n11: f64, n10: f64, n01: f64, n00: f64, smoothing: f64) -> Option<f64> {
    let (a, b, c, d) = (
        n11 + smoothing,
        n10 + smoothing,
        n01 + smoothing,
        n00 + smoothing,
    );
    let n = a + b + c + d;
    let (n1, n2) = (a + b, a + c);
    if n1 <= 0.0 || n2 <= 0.0 || a <= 0.0 {
        return None;
    }
    if n10 == 0.0 && n01 == 0.0 && n00 == 0.0 {
        return Some(1.0);
    }
    let pmi = (a.ln() + n.ln()) - (n1.ln() + n2.ln());
    let denominator = -(a.ln() - n.ln());
    Some((pmi / denominator).clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::npmi;

    #[test]
    fn undefined_without_support_and_bounded_otherwise() {
        assert_eq!(npmi(0, 0, 5, 10), (None, None));
        assert_eq!(npmi(0, 1, 1, 0), (None, None));
        // Never together despite support: -1 unsmoothed.
        assert_eq!(npmi(0, 3, 3, 10).0, Some(-1.0));
        // Always together: 1.
        assert_eq!(npmi(4, 4, 4, 4).0, Some(1.0));
        // Independent-ish: near 0; smoothing keeps it within bounds.
        let (u, s) = npmi(1, 2, 5, 10);
        assert!(u.unwrap().abs() < 1e-9, "{u:?}");
        assert!(s.unwrap().abs() < 1.0);
        // Inconsistent counts are undefined.
        assert_eq!(npmi(5, 2, 2, 10), (None, None));
    }
}

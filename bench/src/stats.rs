//! Order statistics of measured durations (all in microseconds).

/// The `q` quantile (0..=1) of `values` by the nearest-rank method, `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
}

/// p50, p99 and max of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        Some(Spread {
            count: values.len(),
            p50: quantile(values, 0.5)?,
            p99: quantile(values, 0.99)?,
            max: quantile(values, 1.0)?,
        })
    }
}

/// A duration in microseconds, printed in the unit that keeps it readable.
pub fn human_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} us")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
        // Three values: the median is the middle one, p99 the largest.
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Some(Spread {
                count: 3,
                p50: 2.0,
                p99: 3.0,
                max: 3.0
            })
        );
    }

    #[test]
    fn readable_units() {
        assert_eq!(human_us(12.34), "12.3 us");
        assert_eq!(human_us(15_000.0), "15.00 ms");
        assert_eq!(human_us(2_500_000.0), "2.50 s");
    }
}

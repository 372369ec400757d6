//! Mean and squared coefficient of variation of latencies, exact: integer
//! sums of nanoseconds and of their squares, not the histogram's buckets
//! (which keep three significant digits and would flatten the variance).
//!
//! At one request in flight (`loadgen --concurrency 1`) each latency is one
//! request's service time, so these are the `c_ms` and `scv` of the model's
//! M/G/1 queue (docs/model.md).

use std::time::Duration;

/// Running count, sum and sum of squares of durations in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Moments {
    count: u64,
    sum: u128,
    sum_of_squares: u128,
}

impl Moments {
    /// Adds one duration. Saturates instead of wrapping: 2^128 ns² is over
    /// ten million requests of an hour each.
    pub fn record(&mut self, latency: Duration) {
        let nanos = latency.as_nanos();
        self.count = self.count.saturating_add(1);
        self.sum = self.sum.saturating_add(nanos);
        self.sum_of_squares = self
            .sum_of_squares
            .saturating_add(nanos.saturating_mul(nanos));
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean in milliseconds; None when nothing was recorded.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64 / 1e6)
    }

    /// variance / mean², the variance being the second central moment
    /// (divided by n): n Σx² / (Σx)² − 1, with the difference taken in
    /// integers so that nearly equal durations do not cancel into noise.
    /// None without two durations or with a zero mean.
    pub fn scv(&self) -> Option<f64> {
        if self.count < 2 || self.sum == 0 {
            return None;
        }
        let n = u128::from(self.count);
        let square_of_sum = self.sum.checked_mul(self.sum)?;
        let spread = n
            .checked_mul(self.sum_of_squares)?
            .checked_sub(square_of_sum)?;
        Some(spread as f64 / square_of_sum as f64)
    }

    /// Resets to nothing recorded.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(millis: &[u64]) -> Moments {
        let mut m = Moments::default();
        for &ms in millis {
            m.record(Duration::from_millis(ms));
        }
        m
    }

    #[test]
    fn equal_durations_have_no_variation() {
        let m = of(&[3, 3, 3, 3]);
        assert_eq!((m.count(), m.mean_ms(), m.scv()), (4, Some(3.0), Some(0.0)));
    }

    #[test]
    fn scv_is_the_variance_over_the_squared_mean() {
        // 1, 3: mean 2, variance ((1 − 2)² + (3 − 2)²) / 2 = 1, scv 1/4.
        assert_eq!(of(&[1, 3]).scv(), Some(0.25));
        // Nine reads of 1 ms and one export of 91 ms: mean 10, second
        // moment (9 + 8281) / 10 = 829, variance 729, scv 7.29.
        let mix = of(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 91]);
        assert_eq!(mix.mean_ms(), Some(10.0));
        let scv = mix.scv().expect("an scv");
        assert!((scv - 7.29).abs() < 1e-12, "{scv}");
    }

    #[test]
    fn an_exponential_sample_has_an_scv_near_one() {
        // Quantiles of the exponential with mean 1 s at (i + ½) / n.
        let n = 20_000;
        let mut m = Moments::default();
        for i in 0..n {
            let u = (f64::from(i) + 0.5) / f64::from(n);
            m.record(Duration::from_secs_f64(-(1.0 - u).ln()));
        }
        let scv = m.scv().expect("an scv");
        assert!((scv - 1.0).abs() < 0.01, "{scv}");
        let mean = m.mean_ms().expect("a mean");
        assert!((mean - 1000.0).abs() < 1.0, "{mean}");
    }

    #[test]
    fn too_few_durations_have_no_scv() {
        assert_eq!(Moments::default().mean_ms(), None);
        assert_eq!(Moments::default().scv(), None);
        assert_eq!(of(&[5]).scv(), None);
        let mut m = of(&[1, 2]);
        m.reset();
        assert_eq!(m.count(), 0);
    }
}

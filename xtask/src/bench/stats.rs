//! Timing samples and the figures drawn from them.

use serde::Serialize;
use std::time::Duration;

/// The wall-clock times of repeated runs of one measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// What was timed, e.g. `ferry run, 100 steps`.
    pub name: String,
    /// Every run, in seconds, in the order they ran.
    pub samples_s: Vec<f64>,
    /// The median run, in seconds.
    pub median_s: f64,
    /// The fastest run, in seconds (what the figures use).
    pub min_s: f64,
    /// The slowest run, in seconds.
    pub max_s: f64,
}

impl Timing {
    /// Summarises `samples` (at least one).
    pub fn new(name: &str, samples: &[Duration]) -> Timing {
        assert!(!samples.is_empty(), "a timing needs at least one run");
        let secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
        let mut sorted = secs.clone();
        sorted.sort_by(f64::total_cmp);
        Timing {
            name: name.to_string(),
            median_s: median(&sorted),
            min_s: sorted[0],
            max_s: sorted[sorted.len() - 1],
            samples_s: secs,
        }
    }
}

/// The median of sorted values (mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn median_ignores_one_slow_outlier() {
        let t = Timing::new("x", &ms(&[30, 10, 900, 20, 25]));
        assert_eq!(t.median_s, 0.025);
        assert_eq!(t.min_s, 0.010);
        assert_eq!(t.max_s, 0.900);
        assert_eq!(t.samples_s, [0.03, 0.01, 0.9, 0.02, 0.025]);
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(Timing::new("x", &ms(&[10, 40, 20, 30])).median_s, 0.025);
    }
}

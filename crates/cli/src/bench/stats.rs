//! Median, min and max of a cell's samples.
//!
//! The median rather than the mean: the machines this runs on are small and noisy, and one
//! sample that lost its core to another process should not move the headline number.

/// Summary of one cell's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Middle sample (mean of the two middle ones for an even count).
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

/// Summarizes `samples`; `None` when there are none.
#[must_use]
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (&min, &max) = (sorted.first()?, sorted.last()?);
    let mid = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    };
    Some(Summary { median, min, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_count_takes_the_middle() {
        let s = summarize(&[5.0, 1.0, 3.0, 9.0, 2.0]).expect("non-empty");
        assert_eq!(
            s,
            Summary {
                median: 3.0,
                min: 1.0,
                max: 9.0
            }
        );
    }

    #[test]
    fn even_count_averages_the_two_middle_ones() {
        let s = summarize(&[4.0, 1.0, 3.0, 10.0]).expect("non-empty");
        assert_eq!(s.median, 3.5);
        assert_eq!((s.min, s.max), (1.0, 10.0));
    }

    #[test]
    fn one_sample_is_everything() {
        let s = summarize(&[7.5]).expect("non-empty");
        assert_eq!((s.median, s.min, s.max), (7.5, 7.5, 7.5));
    }

    #[test]
    fn no_samples_no_summary() {
        assert_eq!(summarize(&[]), None);
    }
}

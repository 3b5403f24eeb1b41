//! Is a run's latency different from a baseline's, op by op, or is it noise?
//!
//! Each side of an op is a list of *blocks*: one histogram per `.hlog` interval per target
//! ([`super::load_blocks`]). Per op this gives:
//!
//! - the p50 and p99 ratio (run / base) of the merged histograms, each value guarded by
//!   `max(1)` µs so that an empty or all-zero quantile cannot divide by zero;
//! - a bootstrap confidence interval for each ratio: the blocks of each side are resampled with
//!   replacement, merged, the quantile taken, the ratio formed, and the percentile interval of
//!   [`Options::resamples`] such ratios kept. Resampling whole intervals rather than single
//!   values keeps what varies from one second (or one target) to the next in the interval; a
//!   fixed seed per op makes it deterministic;
//! - a Mann–Whitney U test on every recorded value (normal approximation, tie-corrected, with a
//!   continuity correction, as scipy's default `mannwhitneyu(..., method="asymptotic")`). On
//!   hundreds of thousands of samples it calls even a tiny shift significant, and it treats
//!   samples as independent, which latencies a second apart are not: it is reported, but the
//!   verdict is the intervals';
//! - a [`Verdict`]: slower or faster when a quantile's interval lies wholly above or below 1,
//!   no significant difference when every interval contains 1.
//!
//! Quantiles follow hdrhistogram's `value_at_quantile` exactly (rank `ceil(q·n)`, at least 1,
//! the highest value equivalent to the bin reached), so a ratio here is the ratio of the two
//! merged histograms' own percentiles.
//!
//! Speed: a resample never merges histograms. Each side is laid out once as, per quantile, a
//! window of cumulative counts (bins × blocks); a resample is a vector of block multiplicities,
//! and its quantile a binary search over the window's rows, each probe one dot product. The
//! window is bounded by the lowest and highest per-block quantile, since a weighted mixture's
//! quantile always lies between its components' (see [`Side::new`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use hdrhistogram::Histogram;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// The quantiles compared, as exact fractions (`numerator / denominator`): integer ranks leave no
/// floating-point doubt about which bin a quantile falls in.
const QUANTILES: [(&str, u64, u64); 2] = [("p50", 1, 2), ("p99", 99, 100)];

/// A side needs this many non-empty intervals for a confidence interval: resampling a single
/// block always gives the same merge, an interval of width zero that would call any difference
/// significant.
pub const MIN_BLOCKS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Bootstrap resamples per op; 2000 steadies the 2.5th and 97.5th percentiles.
    pub resamples: usize,
    /// Of the percentile interval, e.g. 0.95.
    pub confidence: f64,
    /// Mixed with a hash of the op's name: each op's result depends only on its own data.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options { resamples: 2000, confidence: 0.95, seed: 0x6167_656e_7473_6821 }
    }
}

/// The ratio of one quantile, run over base.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantileRatio {
    /// The merged histograms' quantiles, µs.
    pub base_us: u64,
    pub run_us: u64,
    /// `max(run_us, 1) / max(base_us, 1)`.
    pub ratio: f64,
    /// The bootstrap percentile interval (low, high); None with fewer than [`MIN_BLOCKS`]
    /// intervals on a side.
    pub ci: Option<(f64, f64)>,
}

impl QuantileRatio {
    /// Slower when the interval lies above 1, faster below, no significant difference when it
    /// contains 1 (bounds included); None without an interval.
    pub fn verdict(&self) -> Option<Verdict> {
        let (low, high) = self.ci?;
        Some(if low > 1.0 {
            Verdict::Slower
        } else if high < 1.0 {
            Verdict::Faster
        } else {
            Verdict::NoSignificantDifference
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every compared quantile's interval contains 1.
    NoSignificantDifference,
    /// At least one quantile's interval lies above 1, none below.
    Slower,
    /// At least one quantile's interval lies below 1, none above.
    Faster,
    /// One quantile slower, another faster (e.g. a faster median, a longer tail).
    Mixed,
    /// A side has fewer than [`MIN_BLOCKS`] non-empty intervals (or none at all).
    InsufficientData,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::NoSignificantDifference => "no significant difference",
            Verdict::Slower => "slower",
            Verdict::Faster => "faster",
            Verdict::Mixed => "mixed",
            Verdict::InsufficientData => "insufficient data",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One op, run against base.
#[derive(Debug, Clone, PartialEq)]
pub struct OpComparison {
    pub op: String,
    /// Recorded values per side.
    pub base_count: u64,
    pub run_count: u64,
    /// Non-empty intervals (blocks) per side.
    pub base_blocks: usize,
    pub run_blocks: usize,
    /// None when a side recorded nothing.
    pub p50: Option<QuantileRatio>,
    pub p99: Option<QuantileRatio>,
    /// Two-sided Mann–Whitney p-value; None when a side recorded nothing.
    pub p_value: Option<f64>,
    pub verdict: Verdict,
}

/// [`compare_blocks_with`] with [`Options::default`].
pub fn compare_blocks(
    base: &BTreeMap<String, Vec<Histogram<u64>>>,
    run: &BTreeMap<String, Vec<Histogram<u64>>>,
) -> Vec<OpComparison> {
    compare_blocks_with(base, run, &Options::default())
}

/// Every op of either side, in name order; an op missing from one side has
/// [`Verdict::InsufficientData`].
pub fn compare_blocks_with(
    base: &BTreeMap<String, Vec<Histogram<u64>>>,
    run: &BTreeMap<String, Vec<Histogram<u64>>>,
    opts: &Options,
) -> Vec<OpComparison> {
    let ops: Vec<&String> = base.keys().chain(run.keys()).collect::<BTreeSet<_>>().into_iter().collect();
    // Ops are independent (each has its own seed): one thread per core, each taking every
    // `threads`-th op, the results put back in name order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, ops.len().max(1));
    let mut out: Vec<(usize, OpComparison)> = std::thread::scope(|scope| {
        let ops = &ops;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..ops.len())
                        .step_by(threads)
                        .map(|i| (i, compare_op(ops[i], blocks_of(base, ops[i]), blocks_of(run, ops[i]), opts)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a comparison thread panicked")).collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, c)| c).collect()
}

fn blocks_of<'a>(m: &'a BTreeMap<String, Vec<Histogram<u64>>>, op: &str) -> &'a [Histogram<u64>] {
    m.get(op).map(Vec::as_slice).unwrap_or_default()
}

/// One op's comparison from its two lists of blocks.
pub fn compare_op(op: &str, base: &[Histogram<u64>], run: &[Histogram<u64>], opts: &Options) -> OpComparison {
    let (b, r) = (Side::new(base), Side::new(run));
    let mut out = OpComparison {
        op: op.to_string(),
        base_count: b.totals.iter().sum(),
        run_count: r.totals.iter().sum(),
        base_blocks: b.totals.len(),
        run_blocks: r.totals.len(),
        p50: None,
        p99: None,
        p_value: None,
        verdict: Verdict::InsufficientData,
    };
    if b.totals.is_empty() || r.totals.is_empty() {
        return out;
    }
    out.p_value = mann_whitney(&b.merged(), &r.merged()).map(|m| m.p_value);
    let (qb, qr) = (b.quantiles(&vec![1; b.totals.len()]), r.quantiles(&vec![1; r.totals.len()]));
    let cis = if b.totals.len() >= MIN_BLOCKS && r.totals.len() >= MIN_BLOCKS && opts.resamples > 0 {
        bootstrap(&b, &r, opts, seed_for(opts.seed, op)).map(Some)
    } else {
        [None, None]
    };
    let q = |k: usize| QuantileRatio { base_us: qb[k], run_us: qr[k], ratio: ratio(qb[k], qr[k]), ci: cis[k] };
    out.p50 = Some(q(0));
    out.p99 = Some(q(1));
    let verdicts: Vec<Option<Verdict>> = [q(0), q(1)].iter().map(QuantileRatio::verdict).collect();
    out.verdict = if verdicts.contains(&None) {
        Verdict::InsufficientData
    } else {
        match (verdicts.contains(&Some(Verdict::Slower)), verdicts.contains(&Some(Verdict::Faster))) {
            (true, true) => Verdict::Mixed,
            (true, false) => Verdict::Slower,
            (false, true) => Verdict::Faster,
            (false, false) => Verdict::NoSignificantDifference,
        }
    };
    out
}

/// Run over base, each guarded by `max(1)`: 0 µs reads as 1 µs, so 0 against 0 is 1, not 0 or NaN.
pub fn ratio(base_us: u64, run_us: u64) -> f64 {
    run_us.max(1) as f64 / base_us.max(1) as f64
}

/// The percentile intervals of the p50 and p99 ratios over `opts.resamples` resamples.
fn bootstrap(b: &Side, r: &Side, opts: &Options, seed: u64) -> [(f64, f64); 2] {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut ratios = [Vec::with_capacity(opts.resamples), Vec::with_capacity(opts.resamples)];
    let (mut wb, mut wr) = (vec![0u64; b.totals.len()], vec![0u64; r.totals.len()]);
    for _ in 0..opts.resamples {
        let qb = b.resample(&mut rng, &mut wb);
        let qr = r.resample(&mut rng, &mut wr);
        for (k, rs) in ratios.iter_mut().enumerate() {
            rs.push(ratio(qb[k], qr[k]));
        }
    }
    ratios.map(|rs| percentile_interval(rs, opts.confidence))
}

/// The central `confidence` share of `xs`, with linear interpolation between order statistics.
fn percentile_interval(mut xs: Vec<f64>, confidence: f64) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    let tail = ((1.0 - confidence) / 2.0).clamp(0.0, 0.5);
    let at = |p: f64| {
        let h = p * (xs.len() - 1) as f64;
        let i = h.floor() as usize;
        match xs.get(i + 1) {
            Some(next) => xs[i] + (h - i as f64) * (next - xs[i]),
            None => xs[i],
        }
    };
    (at(tail), at(1.0 - tail))
}

/// FNV-1a of the op's name, mixed into the seed.
fn seed_for(seed: u64, op: &str) -> u64 {
    op.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)) ^ seed
}

/// hdrhistogram's rank for a quantile: `ceil(n · num / den)`, at least 1.
fn rank(n: u64, num: u64, den: u64) -> u64 {
    (u128::from(n) * u128::from(num)).div_ceil(u128::from(den)).max(1) as u64
}

/// One side of one op, laid out for resampling.
struct Side {
    /// Every distinct value recorded in any block, ascending (µs, highest equivalent of its bin).
    values: Vec<u64>,
    /// Per non-empty block: (index into `values`, count), ascending.
    blocks: Vec<Vec<(usize, u64)>>,
    /// Per non-empty block, its count.
    totals: Vec<u64>,
    /// Per quantile of [`QUANTILES`].
    windows: Vec<Window>,
}

/// Cumulative counts of every block at the rows `first..first + rows` of `values`, row-major
/// (`cum[row * blocks + block]`), so that a probe reads one contiguous row.
struct Window {
    first: usize,
    cum: Vec<u64>,
}

impl Side {
    /// Empty histograms are left out: an interval in which the op never ran says nothing of its
    /// latency.
    ///
    /// The window of a quantile spans the lowest to the highest per-block quantile. For any
    /// weights (not all zero) the merge's quantile lies inside: at the highest, every block has
    /// at least `q·nᵦ` values at or below, so the merge has at least `q·N`; below the lowest,
    /// every block has fewer than `q·nᵦ`, so the merge has fewer than `q·N`.
    fn new(hs: &[Histogram<u64>]) -> Side {
        let lists: Vec<Vec<(u64, u64)>> = hs
            .iter()
            .filter(|h| !h.is_empty())
            .map(|h| h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect())
            .collect();
        let mut values: Vec<u64> = lists.iter().flatten().map(|(v, _)| *v).collect();
        values.sort_unstable();
        values.dedup();
        let blocks: Vec<Vec<(usize, u64)>> = lists
            .iter()
            .map(|l| l.iter().map(|(v, c)| (values.binary_search(v).expect("every value was collected"), *c)).collect())
            .collect();
        let totals: Vec<u64> = blocks.iter().map(|b| b.iter().map(|(_, c)| c).sum()).collect();
        let mut windows = Vec::new();
        for (_, num, den) in QUANTILES {
            let at = |b: &[(usize, u64)], total: u64| -> usize {
                let r = rank(total, num, den);
                let mut cum = 0;
                b.iter()
                    .find(|(_, c)| {
                        cum += c;
                        cum >= r
                    })
                    .map_or(0, |(i, _)| *i)
            };
            let at_each: Vec<usize> = blocks.iter().zip(&totals).map(|(b, t)| at(b, *t)).collect();
            let (first, last) =
                (at_each.iter().copied().min().unwrap_or(0), at_each.iter().copied().max().unwrap_or(0));
            let rows = if blocks.is_empty() { 0 } else { last - first + 1 };
            let n = blocks.len();
            let mut cum = vec![0u64; rows * n];
            for (col, b) in blocks.iter().enumerate() {
                let mut running = 0;
                let mut entries = b.iter().peekable();
                for row in 0..rows {
                    while let Some((_, c)) = entries.next_if(|(i, _)| *i <= first + row) {
                        running += c;
                    }
                    cum[row * n + col] = running;
                }
            }
            windows.push(Window { first, cum });
        }
        Side { values, blocks, totals, windows }
    }

    /// Every block merged, as (value, count) ascending: what the rank test reads.
    fn merged(&self) -> Vec<(u64, u64)> {
        let mut counts = vec![0u64; self.values.len()];
        for (i, c) in self.blocks.iter().flatten() {
            counts[*i] += c;
        }
        self.values.iter().copied().zip(counts).filter(|(_, c)| *c > 0).collect()
    }

    /// The quantiles of the merge in which block `b` counts `weights[b]` times (not all zero).
    fn quantiles(&self, weights: &[u64]) -> [u64; 2] {
        let n = self.totals.len();
        let total: u64 = self.totals.iter().zip(weights).map(|(t, w)| t * w).sum();
        let mut out = [0; 2];
        for (k, ((_, num, den), win)) in QUANTILES.iter().zip(&self.windows).enumerate() {
            let r = rank(total, *num, *den);
            let below = |row: usize| -> bool {
                win.cum[row * n..(row + 1) * n].iter().zip(weights).map(|(c, w)| c * w).sum::<u64>() < r
            };
            // The first row whose cumulative count reaches the rank; the last row always does.
            let (mut lo, mut hi) = (0, win.cum.len() / n - 1);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if below(mid) { lo = mid + 1 } else { hi = mid }
            }
            out[k] = self.values[win.first + lo];
        }
        out
    }

    /// Draws as many blocks as there are, with replacement, into `weights`; their quantiles.
    fn resample(&self, rng: &mut Xoshiro256PlusPlus, weights: &mut [u64]) -> [u64; 2] {
        weights.fill(0);
        let n = weights.len();
        for _ in 0..n {
            weights[rng.random_range(0..n)] += 1;
        }
        self.quantiles(weights)
    }
}

/// A Mann–Whitney U test's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the run: pairs (base, run) with the run's value higher, ties counting one half.
    pub u: f64,
    /// Standardised U after the continuity correction; positive when the run ranks higher.
    pub z: f64,
    /// Two-sided, from the normal approximation.
    pub p_value: f64,
}

/// The two-sided Mann–Whitney U test of two samples given as (value, count), each ascending by
/// value: midranks for ties, the tie-corrected variance, a continuity correction of ½ (scipy's
/// `mannwhitneyu(run, base, method="asymptotic")`). None when a side is empty. Every value of
/// a tied group of t adds t³ − t to the correction; with every value tied the p-value is 1.
pub fn mann_whitney(base: &[(u64, u64)], run: &[(u64, u64)]) -> Option<MannWhitney> {
    let n1 = base.iter().map(|(_, c)| *c as f64).sum::<f64>();
    let n2 = run.iter().map(|(_, c)| *c as f64).sum::<f64>();
    if n1 == 0.0 || n2 == 0.0 {
        return None;
    }
    let (mut i, mut j) = (0, 0);
    let (mut below, mut rank_sum, mut ties) = (0.0f64, 0.0f64, 0.0f64);
    while i < base.len() || j < run.len() {
        let v = match (base.get(i), run.get(j)) {
            (Some(a), Some(b)) => a.0.min(b.0),
            (Some(a), None) => a.0,
            (None, Some(b)) => b.0,
            (None, None) => unreachable!("the loop's condition"),
        };
        let take = |s: &[(u64, u64)], k: &mut usize| -> f64 {
            let mut c = 0.0;
            while let Some((_, n)) = s.get(*k).filter(|(x, _)| *x == v) {
                c += *n as f64;
                *k += 1;
            }
            c
        };
        let a = take(base, &mut i);
        let b = take(run, &mut j);
        let t = a + b;
        rank_sum += b * (below + (t + 1.0) / 2.0);
        ties += t * t * t - t;
        below += t;
    }
    let u = rank_sum - n2 * (n2 + 1.0) / 2.0;
    let n = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if var <= 0.0 || !var.is_finite() {
        return Some(MannWhitney { u, z: 0.0, p_value: 1.0 });
    }
    let d = u - mean;
    let z = d.signum() * (d.abs() - 0.5).max(0.0) / var.sqrt();
    Some(MannWhitney { u, z, p_value: erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0) })
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, relative error below
/// 1.2e-7 everywhere): a two-sided normal p-value is `erfc(|z| / √2)`.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// A p-value for a table or CSV: 4 significant digits, so that 1e-30 is not printed as 0.
pub fn format_p(p: f64) -> String {
    if p >= 1e-4 { format!("{p:.4}") } else { format!("{p:.3e}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: test data that is the same on every machine.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn histogram(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = crate::schema::new_histogram();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    /// `blocks` intervals of `per` latencies (µs), ×`num`/`den`: mostly 800–1200 µs, one in 50
    /// a 3–8 ms tail, each interval's level shifted a little (as seconds and targets differ).
    fn blocks(seed: u64, blocks: usize, per: usize, num: u64, den: u64) -> Vec<Histogram<u64>> {
        let mut s = seed;
        (0..blocks)
            .map(|_| {
                let shift = next(&mut s) % 100;
                histogram((0..per).map(|_| {
                    let x = next(&mut s);
                    let v = if x.is_multiple_of(50) { 3000 + (x >> 8) % 5000 } else { 800 + shift + (x >> 8) % 400 };
                    v * num / den
                }))
            })
            .collect()
    }

    fn values(h: &Histogram<u64>) -> Vec<(u64, u64)> {
        h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()
    }

    fn contains_one(q: &Option<QuantileRatio>) -> bool {
        let (l, h) = q.unwrap().ci.unwrap();
        l <= 1.0 && 1.0 <= h
    }

    #[test]
    fn identical_samples_differ_in_nothing() {
        let base = blocks(1, 40, 200, 1, 1);
        let c = compare_op("op", &base, &base.clone(), &Options::default());
        assert_eq!((c.base_blocks, c.run_blocks, c.base_count, c.run_count), (40, 40, 8000, 8000));
        assert_eq!(c.p50.unwrap().ratio, 1.0);
        assert!(contains_one(&c.p50) && contains_one(&c.p99), "{c:?}");
        let (l, h) = c.p50.unwrap().ci.unwrap();
        assert!(l < 1.0 && h > 1.0, "resampling each side on its own gives an interval of some width: {c:?}");
        assert!(c.p_value.unwrap() > 0.05, "{c:?}");
        assert_eq!(c.verdict, Verdict::NoSignificantDifference);
        assert_eq!(c.verdict.to_string(), "no significant difference");
    }

    #[test]
    fn other_draws_of_the_same_distribution_are_noise() {
        let c = compare_op("op", &blocks(1, 40, 200, 1, 1), &blocks(2, 40, 200, 1, 1), &Options::default());
        assert!(contains_one(&c.p50) && contains_one(&c.p99), "{c:?}");
        assert!(c.p_value.unwrap() > 0.05, "{c:?}");
        assert_eq!(c.verdict, Verdict::NoSignificantDifference, "{c:?}");
    }

    #[test]
    fn three_times_slower_is_slower() {
        let base = blocks(1, 40, 200, 1, 1);
        let c = compare_op("op", &base, &blocks(1, 40, 200, 3, 1), &Options::default());
        for q in [c.p50.unwrap(), c.p99.unwrap()] {
            assert!((q.ratio - 3.0).abs() < 0.01, "{q:?}");
            let (l, h) = q.ci.unwrap();
            assert!(l > 1.5 && l <= q.ratio && q.ratio <= h, "{q:?}");
        }
        assert!(c.p_value.unwrap() < 1e-12, "{c:?}");
        assert_eq!(c.verdict, Verdict::Slower);
        let f = compare_op("op", &base, &blocks(1, 40, 200, 1, 2), &Options::default());
        assert!((f.p50.unwrap().ratio - 0.5).abs() < 0.01, "{f:?}");
        assert!(f.p50.unwrap().ci.unwrap().1 < 1.0 && f.p_value.unwrap() < 1e-12, "{f:?}");
        assert_eq!(f.verdict, Verdict::Faster);
    }

    #[test]
    fn a_faster_median_with_a_longer_tail_is_mixed() {
        let mut s = 7;
        let mk = |s: &mut u64, body: u64, tail: u64| -> Vec<Histogram<u64>> {
            (0..20)
                .map(|_| {
                    histogram((0..100).map(|_| if next(s).is_multiple_of(20) { tail } else { body + next(s) % 100 }))
                })
                .collect()
        };
        let (base, run) = (mk(&mut s, 1000, 2000), mk(&mut s, 800, 10_000));
        let c = compare_op("op", &base, &run, &Options::default());
        assert_eq!(c.p50.unwrap().verdict(), Some(Verdict::Faster), "{c:?}");
        assert_eq!(c.p99.unwrap().verdict(), Some(Verdict::Slower), "{c:?}");
        assert_eq!(c.verdict, Verdict::Mixed);
    }

    /// scipy's `mannwhitneyu` example (males against females, Conover's data): U = 17 and,
    /// asymptotic with continuity correction, p = 0.11134688653314041.
    #[test]
    fn mann_whitney_matches_the_textbook() {
        let females = histogram([20, 11, 17, 12]);
        let males = histogram([19, 22, 16, 29, 24]);
        let m = mann_whitney(&values(&females), &values(&males)).unwrap();
        assert_eq!(m.u, 17.0);
        assert!((m.p_value - 0.111_346_886_533_140_41).abs() < 1e-3, "{m:?}");
        assert!((m.z - 1.592_168).abs() < 1e-3, "{m:?}");
        // The same through compare_op, from single-interval sides.
        let c = compare_op("op", &[females], &[males], &Options::default());
        assert!((c.p_value.unwrap() - 0.111_346_886_533_140_41).abs() < 1e-3, "{c:?}");
    }

    /// With ties, by hand: base 1 2 2 3 3 3 5, run 2 3 4 4 5 6 6 7. U (run) = 2 + 4.5 + 12 +
    /// 6.5 + 14 + 7 = 46; tie groups of 3, 4, 2, 2, 2 give Σ(t³−t) = 102; n₁n₂/12·(16 − 102/210) =
    /// 72.4, z = (46 − 28 − ½)/√72.4 = 2.0567, p = 0.03972.
    #[test]
    fn mann_whitney_corrects_for_ties() {
        let base = values(&histogram([1, 2, 2, 3, 3, 3, 5]));
        let run = values(&histogram([2, 3, 4, 4, 5, 6, 6, 7]));
        let m = mann_whitney(&base, &run).unwrap();
        assert_eq!(m.u, 46.0);
        assert!((m.z - 2.056_690).abs() < 1e-3, "{m:?}");
        assert!((m.p_value - 0.039_716).abs() < 1e-3, "{m:?}");
        // Symmetric: the other way round, the same p and the opposite z.
        let back = mann_whitney(&run, &base).unwrap();
        assert_eq!(back.u, 56.0 - 46.0);
        assert!((back.z + m.z).abs() < 1e-12 && (back.p_value - m.p_value).abs() < 1e-12);
        // Everything tied: no evidence of anything.
        let all = values(&histogram([5, 5, 5]));
        assert_eq!(mann_whitney(&all, &all).unwrap().p_value, 1.0);
        assert_eq!(mann_whitney(&[], &all), None);
    }

    #[test]
    fn erfc_is_accurate() {
        // erfc(0) = 1, erfc(1) = 0.157299207, erfc(2) = 0.004677735, erfc(-1) = 1.842700793.
        for (x, want) in [(0.0, 1.0), (1.0, 0.157_299_207), (2.0, 0.004_677_735), (-1.0, 1.842_700_793)] {
            assert!((erfc(x) - want).abs() < 1e-7 * want.max(1e-3), "erfc({x}) = {}", erfc(x));
        }
    }

    #[test]
    fn same_seed_same_answer_and_each_op_its_own() {
        let (base, run) = (blocks(3, 30, 100, 1, 1), blocks(4, 30, 100, 11, 10));
        let o = Options::default();
        assert_eq!(compare_op("op", &base, &run, &o), compare_op("op", &base, &run, &o));
        let other = compare_op("op", &base, &run, &Options { seed: 99, ..o });
        assert_eq!(other.p50.unwrap().ratio, compare_op("op", &base, &run, &o).p50.unwrap().ratio);
        assert_ne!(other.p50.unwrap().ci, compare_op("op", &base, &run, &o).p50.unwrap().ci, "the seed is used");
        // An op's result does not depend on which other ops are compared with it.
        let one: BTreeMap<String, Vec<Histogram<u64>>> = [("a".to_string(), base.clone())].into();
        let two: BTreeMap<String, Vec<Histogram<u64>>> =
            [("a".to_string(), base.clone()), ("0".to_string(), run.clone())].into();
        let runs: BTreeMap<String, Vec<Histogram<u64>>> = [("a".to_string(), run.clone())].into();
        assert_eq!(compare_blocks(&one, &runs)[0], compare_blocks(&two, &runs)[1]);
    }

    /// The fast quantile (windows of cumulative counts) against hdrhistogram's own, on merges
    /// done the slow way: all blocks once, then random multiplicities.
    #[test]
    fn resampled_quantiles_are_those_of_the_merge() {
        let mut s = 11;
        // Odd sizes, including n with 0.99·n whole, blocks far apart, one of a single value.
        let mut hs: Vec<Histogram<u64>> = (0..12)
            .map(|i| {
                let n = [1, 7, 100, 200, 33, 1000][i % 6];
                histogram((0..n).map(|_| 10 + next(&mut s) % (50 + 1000 * i as u64)))
            })
            .collect();
        hs.push(crate::schema::new_histogram());
        let side = Side::new(&hs);
        assert_eq!(side.totals.len(), 12, "the empty interval is left out");
        let hs: Vec<Histogram<u64>> = hs.into_iter().filter(|h| !h.is_empty()).collect();
        for round in 0..200 {
            let w: Vec<u64> =
                if round == 0 { vec![1; hs.len()] } else { hs.iter().map(|_| next(&mut s) % 3).collect() };
            if w.iter().all(|w| *w == 0) {
                continue;
            }
            let mut merged = crate::schema::new_histogram();
            for (h, w) in hs.iter().zip(&w) {
                for _ in 0..*w {
                    merged.add(h).unwrap();
                }
            }
            let want = [merged.value_at_quantile(0.5), merged.value_at_quantile(0.99)];
            assert_eq!(side.quantiles(&w), want, "weights {w:?}");
        }
    }

    #[test]
    fn edge_cases() {
        let o = Options::default();
        let some = blocks(5, 10, 50, 1, 1);
        // An empty side, or a side of empty intervals: nothing to compare.
        for empty in [vec![], vec![crate::schema::new_histogram(); 3]] {
            let c = compare_op("op", &some, &empty, &o);
            assert_eq!((c.p50, c.p99, c.p_value, c.verdict), (None, None, None, Verdict::InsufficientData));
            assert_eq!((c.base_blocks, c.run_blocks, c.run_count), (10, 0, 0));
        }
        // A single interval: ratios and a p-value, but no interval to judge by.
        let c = compare_op("op", &some, &blocks(6, 1, 50, 2, 1), &o);
        assert!(c.p50.unwrap().ratio > 1.5 && c.p50.unwrap().ci.is_none(), "{c:?}");
        assert!(c.p_value.unwrap() < 0.01);
        assert_eq!(c.verdict, Verdict::InsufficientData);
        // Zero quantiles (values below a microsecond): 0 against 0 is a ratio of 1.
        let zeros = vec![histogram([0, 0, 0]); 4];
        let c = compare_op("op", &zeros, &zeros, &o);
        assert_eq!((c.p50.unwrap().ratio, c.p50.unwrap().ci), (1.0, Some((1.0, 1.0))));
        assert_eq!((c.p_value, c.verdict), (Some(1.0), Verdict::NoSignificantDifference));
        assert_eq!(ratio(0, 5), 5.0);
        // No resamples: ratios without intervals.
        let c = compare_op("op", &some, &some, &Options { resamples: 0, ..o });
        assert_eq!((c.p50.unwrap().ci, c.verdict), (None, Verdict::InsufficientData));
        // An op on one side only is listed, with nothing to judge.
        let base: BTreeMap<String, Vec<Histogram<u64>>> = [("a".into(), some.clone()), ("b".into(), some)].into();
        let run: BTreeMap<String, Vec<Histogram<u64>>> = [("b".into(), blocks(7, 10, 50, 1, 1))].into();
        let all = compare_blocks(&base, &run);
        assert_eq!(
            all.iter().map(|c| (c.op.as_str(), c.verdict)).collect::<Vec<_>>()[0],
            ("a", Verdict::InsufficientData)
        );
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn percentile_interval_interpolates() {
        let xs: Vec<f64> = (0..=100).map(f64::from).collect();
        let (l, h) = percentile_interval(xs, 0.95);
        assert!((l - 2.5).abs() < 1e-9 && (h - 97.5).abs() < 1e-9, "{l} {h}");
        assert_eq!(percentile_interval(vec![3.0], 0.95), (3.0, 3.0));
    }

    /// The size the command meets: 10 targets × 60 s per side, 10 ops. Not a unit test (slow in
    /// a debug build): `cargo test --release --lib stats::tests::speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn speed() {
        let ops: BTreeMap<String, Vec<Histogram<u64>>> =
            (0..10).map(|i| (format!("op{i}"), blocks(i, 600, 100, 1, 1))).collect();
        let run: BTreeMap<String, Vec<Histogram<u64>>> =
            (0..10).map(|i| (format!("op{i}"), blocks(100 + i, 600, 100, 21, 20))).collect();
        let t = std::time::Instant::now();
        let c = compare_blocks(&ops, &run);
        let took = t.elapsed();
        eprintln!("{} ops in {took:?}", c.len());
        assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    }
}

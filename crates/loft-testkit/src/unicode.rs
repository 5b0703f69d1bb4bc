//! Arbitrary Unicode for the property tests that push text through every door (issue 13):
//! the string strategy ([`input`]), the inputs kept as fixed regression cases
//! ([`regressions`]), and a deterministic runner for both ([`run_cases`]).
//!
//! The strings mix what agents outside the ASCII world and careless clients send: multi-byte
//! letters at any position, combining marks, right-to-left marks and overrides, emoji with ZWJ
//! sequences, flags and skin tones, NUL and the other C0 and C1 controls, odd code points (BOM,
//! zero-width space, line and paragraph separators, noncharacters, private use), long runs of
//! one unit, and strings around the subject's limit of 998 characters.
//!
//! Runs repeat: a fixed seed, a fixed number of cases (the caller's; `PROPTEST_CASES` raises
//! it for a longer local hunt), no failure files. A failure is shrunk (bounded in time) and
//! reported with the smallest input found; add that input to [`regressions`].

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

pub use proptest::test_runner::TestCaseError;

/// What one case returns: `Err` fails the run (and starts shrinking).
pub type CaseResult = Result<(), TestCaseError>;

/// The seed of every run, so that CI repeats what a developer saw.
pub const SEED: [u8; 32] = *b"loft issue 13: unicode, 2 stores";

const LETTERS: &[&str] = &[
    "ü", "Ж", "ש", "中", "é", "ß", "Ω", "ع", "한", "ǅ", "𝔘", "İ", "ﬁ", "ñ", "ø",
];
const COMBINING: &[&str] = &["\u{301}", "\u{308}", "\u{20dd}", "e\u{301}", "\u{301}\u{301}\u{301}"];
const BIDI: &[&str] = &[
    "\u{202e}",
    "\u{200f}",
    "\u{200e}",
    "\u{202b}",
    "\u{2067}",
    "\u{2069}",
    "\u{61c}",
    "\u{202e}txet\u{202c}",
];
const EMOJI: &[&str] = &[
    "🙂",
    "👩\u{200d}💻",
    "👍🏽",
    "🏳\u{fe0f}\u{200d}🌈",
    "🇩🇪",
    "❤\u{fe0f}",
    "👨\u{200d}👩\u{200d}👧\u{200d}👦",
    "🧑🏿\u{200d}🚀",
];
const CONTROLS: &[&str] = &[
    "\u{0}", "\u{1}", "\u{7}", "\t", "\n", "\r", "\r\n", "\u{b}", "\u{c}", "\u{1b}", "\u{7f}", "\u{80}", "\u{85}",
    "\u{9f}",
];
const ODD: &[&str] = &[
    "\u{feff}",
    "\u{200b}",
    "\u{2028}",
    "\u{2029}",
    "\u{fffd}",
    "\u{ffff}",
    "\u{10ffff}",
    "\u{e000}",
    "\u{3000}",
    "\u{a0}",
];

fn pick(set: &'static [&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(set).prop_map(str::to_owned).boxed()
}

/// One piece of a string.
fn piece() -> impl Strategy<Value = String> {
    let units = [LETTERS, COMBINING, BIDI, EMOJI, CONTROLS, ODD].concat();
    prop_oneof![
        // Tokens that are valid labels, names, local parts and credential names.
        4 => "[a-z0-9._-]{1,6}",
        // Printable ASCII, quotes, backslashes, `%`, `<`, `@` and all.
        2 => "[ -~]{1,6}",
        3 => pick(LETTERS),
        1 => pick(COMBINING),
        1 => pick(BIDI),
        2 => pick(EMOJI),
        2 => pick(CONTROLS),
        1 => pick(ODD),
        1 => any::<char>().prop_map(String::from),
        // A long run of one unit.
        1 => (prop::sample::select(units), 40..400usize).prop_map(|(u, n)| u.repeat(n)),
    ]
}

/// A whole input: mostly a few pieces, sometimes one plain token, sometimes a run of 990 to
/// 1000 characters (around the subject's limit).
pub fn input() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(piece(), 1..10).prop_map(|p| p.concat()),
        1 => "[a-z0-9._-]{1,12}",
        1 => (pick(&["x", "ü", "中", "🙂", "e\u{301}"]), 990..=1000usize).prop_map(|(u, n)| u.repeat(n)),
    ]
}

/// Inputs that found defects, kept as fixed cases, and the ones issue 13 reported.
pub fn regressions() -> Vec<String> {
    let mut cases: Vec<String> = [
        // Issue 13: a reply to these subjects panicked (byte slicing of the first letter).
        "Grüße aus Köln",
        "Привет",
        "שלום עולם",
        "🙂 ...",
        // Issue 13: NUL gave 500 on PostgreSQL and was stored on SQLite.
        "a\u{0}b",
        "",
        " ",
        "\u{202e}\u{200f}👩\u{200d}💻e\u{301}\t\u{85}",
    ]
    .map(str::to_owned)
    .into();
    // Found by these tests: a message whose subject had 995 to 998 characters could not be
    // replied to (`Re: ` took the reply's subject over the limit, and the reply was refused).
    cases.push("x".repeat(995));
    cases.push("ü".repeat(998));
    cases
}

/// A case failure naming the step and the input.
pub fn fail(what: &str, input: &str, why: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("{what}, input {input:?}: {why}"))
}

/// Runs `case` on every [`regressions`] input, then on `cases` generated ones (or
/// `PROPTEST_CASES`), from [`SEED`]. Panics with the failure and the smallest failing input.
/// Returns how many inputs ran.
pub fn run_cases(cases: u32, case: impl Fn(&str) -> CaseResult) -> usize {
    let fixed = regressions();
    for s in &fixed {
        if let Err(e) = case(s) {
            panic!("regression case {s:?}: {e}");
        }
    }
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
    if let Err(e) = runner.run(&input(), |s| case(&s)) {
        panic!("{e}");
    }
    fixed.len() + cases as usize
}

/// `s` percent-encoded for a path segment or a query value: every byte but the unreserved
/// ones (RFC 3986) as `%XX`.
pub fn percent_encode(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree as _;

    use super::*;

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("a b/ü\u{0}~"), "a%20b%2F%C3%BC%00~");
    }

    #[test]
    fn the_strings_hold_what_they_promise() {
        let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
        let all: String = (0..400)
            .map(|_| input().new_tree(&mut runner).unwrap().current())
            .collect();
        for needle in ["\u{0}", "\u{301}", "\u{202e}", "\u{200d}", "ü", "\r", "\u{85}"] {
            assert!(all.contains(needle), "no {needle:?} in 400 inputs");
        }
    }
}

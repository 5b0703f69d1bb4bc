//! A unified line diff, for the audit row of a reviewer's edit (`approval.edit`).
//!
//! Written here rather than taken from a crate: the usual one (`similar`) is not among the
//! packages this workspace may use, and the audit needs little: whole lines, a few lines of
//! context, and a bound on work and size, since a body may be a megabyte. The common head and
//! tail are cut first (an edit usually touches a few lines); what remains is aligned by a
//! longest common subsequence when it is small enough (at most [`MAX_CELLS`] pairs of lines),
//! else shown as all removed then all added, which is still a correct diff, only a coarser one.

use std::fmt::Write as _;

/// The largest LCS table (lines before × lines after, once the common head and tail are cut).
pub const MAX_CELLS: usize = 4_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Removed,
    Added,
}

/// The unified diff of `before` and `after` by lines (`-` removed, `+` added, ` ` context,
/// `@@ -a,b +c,d @@` hunk headers), with `context` lines around each change; empty when equal.
#[allow(
    clippy::many_single_char_names,
    reason = "a, b, i, j, k are the textbook names of a diff's two sides and cursors"
)]
pub fn unified(before: &str, after: &str, context: usize) -> String {
    if before == after {
        return String::new();
    }
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let ops = align(&a, &b);
    // Each op with its line: (op, index in a, index in b).
    let mut lines: Vec<(Op, usize, usize)> = Vec::with_capacity(ops.len());
    let (mut i, mut j) = (0, 0);
    for op in ops {
        lines.push((op, i, j));
        match op {
            Op::Same => {
                i += 1;
                j += 1;
            }
            Op::Removed => i += 1,
            Op::Added => j += 1,
        }
    }
    let changed: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].0 != Op::Same).collect();
    if changed.is_empty() {
        // Only line endings differ (`lines` reads "a\n" and "a" alike).
        return "@@ the text differs only in its final line break @@\n".to_owned();
    }
    let mut out = String::new();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(context);
        let mut end = (changed[k] + context + 1).min(lines.len());
        // Join the next changes whose context touches this hunk's.
        while k + 1 < changed.len() && changed[k + 1] <= end + context {
            k += 1;
            end = (changed[k] + context + 1).min(lines.len());
        }
        let hunk = &lines[start..end];
        let a_len = hunk.iter().filter(|l| l.0 != Op::Added).count();
        let b_len = hunk.iter().filter(|l| l.0 != Op::Removed).count();
        let (a_start, b_start) = (hunk[0].1, hunk[0].2);
        // Line numbers are 1-based; an empty side names the line before it.
        let from = |s: usize, n: usize| if n == 0 { s } else { s + 1 };
        let _ = writeln!(
            out,
            "@@ -{},{a_len} +{},{b_len} @@",
            from(a_start, a_len),
            from(b_start, b_len)
        );
        for &(op, i, j) in hunk {
            let (sign, line) = match op {
                Op::Same => (' ', a[i]),
                Op::Removed => ('-', a[i]),
                Op::Added => ('+', b[j]),
            };
            let _ = writeln!(out, "{sign}{line}");
        }
        k += 1;
    }
    out
}

/// The edit script turning `a` into `b`.
fn align(a: &[&str], b: &[&str]) -> Vec<Op> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops = vec![Op::Same; head];
    if ma.len().saturating_mul(mb.len()) <= MAX_CELLS {
        ops.extend(lcs(ma, mb));
    } else {
        ops.extend(std::iter::repeat_n(Op::Removed, ma.len()));
        ops.extend(std::iter::repeat_n(Op::Added, mb.len()));
    }
    ops.extend(std::iter::repeat_n(Op::Same, tail));
    ops
}

/// A longest-common-subsequence alignment (removals before additions within a change).
#[allow(
    clippy::many_single_char_names,
    reason = "a, b, n, m, i, j are the textbook names of the LCS table's sides and cursors"
)]
fn lcs(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    // len[i][j]: LCS length of a[i..] and b[j..], in one flat table.
    let w = m + 1;
    let mut len = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[i * w + j] = if a[i] == b[j] {
                len[(i + 1) * w + j + 1] + 1
            } else {
                len[(i + 1) * w + j].max(len[i * w + j + 1])
            };
        }
    }
    let mut ops = Vec::with_capacity(n + m);
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Same);
            i += 1;
            j += 1;
        } else if j == m || (i < n && len[(i + 1) * w + j] >= len[i * w + j + 1]) {
            ops.push(Op::Removed);
            i += 1;
        } else {
            ops.push(Op::Added);
            j += 1;
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a\nb", "a\nb", 3), "");
    }

    #[test]
    fn one_changed_line_with_context() {
        let before = "one\ntwo\nthree\nfour\nfive\nsix\nseven\n";
        let after = "one\ntwo\nthree\nFOUR\nfive\nsix\nseven\n";
        assert_eq!(
            unified(before, after, 2),
            "@@ -2,5 +2,5 @@\n two\n three\n-four\n+FOUR\n five\n six\n"
        );
    }

    #[test]
    fn additions_removals_and_separate_hunks() {
        let before = (1..=20).map(|i| i.to_string()).collect::<Vec<_>>().join("\n");
        let after = before.replace("\n3\n", "\n3\nnew\n").replace("\n18", "");
        let d = unified(&before, &after, 1);
        assert_eq!(d, "@@ -3,2 +3,3 @@\n 3\n+new\n 4\n@@ -17,3 +18,2 @@\n 17\n-18\n 19\n");
        // From nothing, and to nothing.
        assert_eq!(unified("", "hi\n", 3), "@@ -0,0 +1,1 @@\n+hi\n");
        assert_eq!(unified("hi\n", "", 3), "@@ -1,1 +0,0 @@\n-hi\n");
        assert!(unified("a\n", "a", 3).contains("final line break"));
    }

    #[test]
    fn large_rewrites_stay_bounded() {
        let before = (0..3000).map(|i| format!("a{i}")).collect::<Vec<_>>().join("\n");
        let after = (0..3000).map(|i| format!("b{i}")).collect::<Vec<_>>().join("\n");
        let d = unified(&before, &after, 3);
        assert_eq!(d.lines().filter(|l| l.starts_with('-')).count(), 3000);
        assert_eq!(d.lines().filter(|l| l.starts_with('+')).count(), 3000);
    }
}

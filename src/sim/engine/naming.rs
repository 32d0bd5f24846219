//! The name patterns of RunInstances' `InstanceName` and `HostName`, as their
//! api.json member documents describe them:
//! - `{R:x}` numbers the instances of one call x, x+1, …, x+n-1;
//! - `{R:x,F:y}` does the same zero-padded to y digits (y in [0, 8], 0 = no
//!   padding; a longer number keeps all its digits);
//! - `{IP}` (HostName only) is the instance's private IP address;
//! - several patterns may be used; anything else in braces is plain text;
//! - without a pattern, a call for several instances appends 1, 2, …, n.

use std::fmt::Write as _;

/// Expands `template` for instance `n` (0-based) of `count`. `ip` replaces
/// `{IP}` when given (host names); otherwise `{IP}` is plain text.
pub(super) fn expand(template: &str, n: usize, count: usize, ip: Option<&str>) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut rest = template;
    let mut patterned = false;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some((start, width, len)) = sequence(rest) {
            let _ = write!(out, "{:0width$}", start + n as u64);
            rest = &rest[len..];
            patterned = true;
        } else if let (Some(ip), Some(after)) = (ip, rest.strip_prefix("{IP}")) {
            out.push_str(ip);
            rest = after;
            patterned = true;
        } else {
            out.push('{');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    if !patterned && count > 1 {
        let _ = write!(out, "{}", n + 1);
    }
    out
}

/// `{R:x}` or `{R:x,F:y}` at the start of `s`: (x, y, length of the pattern).
fn sequence(s: &str) -> Option<(u64, usize, usize)> {
    let body = s.strip_prefix("{R:")?;
    let end = body.find('}')?;
    let (start, width) = match body[..end].split_once(",F:") {
        Some((x, y)) => (x, Some(y)),
        None => (&body[..end], None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(start) || width.is_some_and(|w| !digits(w)) {
        return None;
    }
    let width: usize = width.map_or(Ok(0), str::parse).ok()?;
    if width > 8 {
        return None;
    }
    Some((start.parse().ok()?, width, "{R:".len() + end + 1))
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn sequences_follow_the_documented_examples() {
        // The examples of the api.json member documents.
        assert_eq!(expand("server_{R:3}", 0, 1, None), "server_3");
        let two = |t: &str| (0..2).map(|n| expand(t, n, 2, None)).collect::<Vec<_>>();
        assert_eq!(two("server_{R:3}"), ["server_3", "server_4"]);
        assert_eq!(two("server_{R:3,F:3}"), ["server_003", "server_004"]);
        assert_eq!(two("app_{R:99,F:2}"), ["app_99", "app_100"]);
        assert_eq!(two("server_"), ["server_1", "server_2"]);
        assert_eq!(
            expand("server_", 0, 1, None),
            "server_",
            "one instance, no suffix"
        );
        // F:0 is no padding; several patterns each count.
        assert_eq!(two("a{R:7,F:0}-b{R:1,F:2}"), ["a7-b01", "a8-b02"]);
    }

    #[test]
    fn the_ip_pattern_is_for_host_names_only() {
        let ip = Some("10.0.12.8");
        assert_eq!(expand("node-{IP}", 0, 1, ip), "node-10.0.12.8");
        assert_eq!(
            expand("web-{IP}-{R:1}", 1, 2, Some("10.0.12.9")),
            "web-10.0.12.9-2"
        );
        // Without an address (instance names) it is plain text, so suffixed.
        assert_eq!(expand("node-{IP}", 1, 2, None), "node-{IP}2");
    }

    #[test]
    fn invalid_patterns_are_plain_text() {
        for t in [
            "x{}",
            "x{R:}",
            "x{R:a}",
            "x{R:1,F:9}",
            "x{R:1,F:}",
            "x{R:1",
            "x{r:1}",
            "x{R:1,G:2}",
        ] {
            assert_eq!(expand(t, 0, 1, None), t, "{t}");
            assert_eq!(expand(t, 1, 2, None), format!("{t}2"), "{t}");
        }
    }
}

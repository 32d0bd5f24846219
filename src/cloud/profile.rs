//! The official SDKs' profile file, as their `ProfileCredential` reads it:
//! `~/.tencentcloud/credentials`, else `/etc/tencentcloud/credentials`; INI,
//! the `[default]` section's `secret_id` and `secret_key`. What a person
//! running `cvm-operator plan` on a laptop often has instead of variables.

use super::credentials::Credentials;
use std::path::{Path, PathBuf};

/// The files the SDKs look at, in order.
pub fn paths(home: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(home) = home {
        out.push(home.join(".tencentcloud").join("credentials"));
    }
    out.push(PathBuf::from("/etc/tencentcloud/credentials"));
    out
}

/// The keys of the `[default]` section, if both are there and not empty.
pub fn parse(text: &str) -> Option<Credentials> {
    let mut section = String::new();
    let (mut id, mut key) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        if section != "default" {
            continue;
        }
        let Some((k, v)) = line.split_once(['=', ':']) else {
            continue;
        };
        let v = unquoted(v.trim()).to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "secret_id" => id = Some(v),
            "secret_key" => key = Some(v),
            _ => {}
        }
    }
    Credentials::new(id?, key?, None).ok()
}

fn unquoted(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// The first profile file with keys, and the keys.
pub fn find(home: Option<&Path>) -> Option<(PathBuf, Credentials)> {
    paths(home).into_iter().find_map(|p| {
        let creds = parse(&std::fs::read_to_string(&p).ok()?)?;
        Some((p, creds))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_section_as_the_sdks_read_it() {
        let text = "# keys\n[other]\nsecret_id = AKIDother\nsecret_key = no\n\n[default]\nsecret_id = AKIDexample12345\nsecret_key: \"key-value\"\nrole_arn = ignored\n";
        let c = parse(text).unwrap();
        assert_eq!(c.secret_id(), "AKIDexample12345");
        assert_eq!(c.secret_key().expose(), "key-value");
        assert!(parse("[default]\nsecret_id = a\n").is_none(), "no key");
        assert!(parse("[default]\nsecret_id = \nsecret_key = k\n").is_none());
        assert!(parse("[x]\nsecret_id = a\nsecret_key = k\n").is_none());
    }

    #[test]
    fn the_home_file_comes_first() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(
            paths(Some(home.path()))[0],
            home.path().join(".tencentcloud/credentials")
        );
        std::fs::create_dir_all(home.path().join(".tencentcloud")).unwrap();
        std::fs::write(
            home.path().join(".tencentcloud/credentials"),
            "[default]\nsecret_id=AKIDhome\nsecret_key=k\n",
        )
        .unwrap();
        let (path, creds) = find(Some(home.path())).unwrap();
        assert!(path.starts_with(home.path()));
        assert_eq!(creds.secret_id(), "AKIDhome");
    }
}

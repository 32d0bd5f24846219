//! TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0.
//!
//! Pure functions only: the client uses them to sign, the simulator to verify.
//! The steps and the names of the intermediate values follow the official
//! "Signature v3" page (see ../shared/reference/cvm-api.md §1.4–1.6) so the
//! unit tests can check every intermediate hash against the published vector.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The suffix of every credential scope and the last link of the key chain.
pub const TERMINATOR: &str = "tc3_request";

type HmacSha256 = Hmac<Sha256>;

/// `Authorization` of a request the service accepts unsigned
/// (AssumeRoleWithWebIdentity): the official SDKs send this literal.
pub const UNSIGNED: &str = "SKIP";

/// Everything that goes into one signature. Header names may be given in any
/// case; they are lower-cased and sorted as the canonical form requires.
#[derive(Debug, Clone, Copy)]
pub struct SigningInput<'a> {
    pub method: &'a str,
    /// The query string exactly as sent after `?` (empty for POST). Never
    /// re-encoded or re-sorted: the Python SDK keeps insertion order, Go sorts,
    /// and each signs what it sends.
    pub query: &'a str,
    /// Signed headers as (name, value) pairs; must include content-type and host.
    pub headers: &'a [(&'a str, &'a str)],
    /// Exact body bytes.
    pub payload: &'a [u8],
    /// `X-TC-Timestamp`, Unix seconds.
    pub timestamp: i64,
    /// The service name, the first label of the host (`cvm`).
    pub service: &'a str,
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// `content-type;host`-style list: lower-case, sorted, `;`-joined.
pub fn signed_headers(headers: &[(&str, &str)]) -> String {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    names.sort();
    names.join(";")
}

/// The six-line canonical request. Header names and values are trimmed and
/// lower-cased, as the documentation specifies: its current example signs
/// `X-TC-Action: DescribeInstances` as `x-tc-action:describeinstances`. The
/// official SDKs sign only `content-type` and `host`, whose values are lower
/// case already, so for them this is the verbatim value.
pub fn canonical_request(input: &SigningInput<'_>) -> String {
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
        .collect();
    headers.sort();
    let mut canonical_headers = String::new();
    for (k, v) in &headers {
        canonical_headers.push_str(k);
        canonical_headers.push(':');
        canonical_headers.push_str(v);
        canonical_headers.push('\n');
    }
    format!(
        "{}\n/\n{}\n{}\n{}\n{}",
        input.method.to_ascii_uppercase(),
        input.query,
        canonical_headers,
        signed_headers(input.headers),
        sha256_hex(input.payload)
    )
}

/// The UTC date (`YYYY-MM-DD`) of a Unix timestamp. Using local time (UTC+8 at
/// Tencent) is the classic bug the docs warn about around midnight.
pub fn utc_date(timestamp: i64) -> Option<String> {
    let ts = jiff::Timestamp::from_second(timestamp).ok()?;
    Some(ts.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
}

/// `<date>/<service>/tc3_request`.
pub fn credential_scope(date: &str, service: &str) -> String {
    format!("{date}/{service}/{TERMINATOR}")
}

pub fn string_to_sign(timestamp: i64, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The three derived keys, exposed so tests can check each link of the chain.
pub struct KeyChain {
    pub k_date: [u8; 32],
    pub k_service: [u8; 32],
    pub k_signing: [u8; 32],
}

pub fn key_chain(secret_key: &str, date: &str, service: &str) -> KeyChain {
    let k_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(&k_date, service.as_bytes());
    let k_signing = hmac_sha256(&k_service, TERMINATOR.as_bytes());
    KeyChain {
        k_date,
        k_service,
        k_signing,
    }
}

/// A computed signature plus what a caller needs to build the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub scope: String,
    pub signed_headers: String,
    pub signature: String,
}

impl Signature {
    pub fn authorization(&self, secret_id: &str) -> String {
        format!(
            "{ALGORITHM} Credential={secret_id}/{}, SignedHeaders={}, Signature={}",
            self.scope, self.signed_headers, self.signature
        )
    }
}

/// Signs `input` with `secret_key`. `None` only when the timestamp is not a
/// representable date.
pub fn sign(secret_key: &str, input: &SigningInput<'_>) -> Option<Signature> {
    let date = utc_date(input.timestamp)?;
    let scope = credential_scope(&date, input.service);
    let sts = string_to_sign(input.timestamp, &scope, &canonical_request(input));
    let keys = key_chain(secret_key, &date, input.service);
    let signature = hex::encode(hmac_sha256(&keys.k_signing, sts.as_bytes()));
    Some(Signature {
        scope,
        signed_headers: signed_headers(input.headers),
        signature,
    })
}

/// Constant-time comparison of two hex signatures (a verifier must not leak
/// how many leading characters matched).
pub fn signatures_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request,
/// SignedHeaders=a;b, Signature=<hex>`. The error text says what is wrong, for
/// the `AuthFailure.InvalidAuthorization` message.
pub fn parse_authorization(header: &str) -> Result<ParsedAuthorization, String> {
    let rest = header
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| format!("the algorithm must be `{ALGORITHM}`"))?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("malformed element `{part}`"))?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            other => return Err(format!("unknown element `{other}`")),
        }
    }
    let credential = credential.ok_or("missing Credential")?;
    let signed = signed.ok_or("missing SignedHeaders")?;
    let signature = signature.ok_or("missing Signature")?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [secret_id, date, service, terminator] = parts[..] else {
        return Err("Credential must be <SecretId>/<date>/<service>/tc3_request".into());
    };
    if terminator != TERMINATOR || secret_id.is_empty() {
        return Err("Credential must be <SecretId>/<date>/<service>/tc3_request".into());
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("Signature must be 64 hex characters".into());
    }
    let signed_headers: Vec<String> = signed.split(';').map(|s| s.to_ascii_lowercase()).collect();
    if !signed_headers.iter().any(|h| h == "content-type")
        || !signed_headers.iter().any(|h| h == "host")
    {
        return Err("SignedHeaders must include content-type and host".into());
    }
    Ok(ParsedAuthorization {
        secret_id: secret_id.to_string(),
        date: date.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vector A (official documentation, older unmasked keys); cvm-api.md §1.8.
    const ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE";
    const KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
    const TS: i64 = 1551113065;
    const BODY: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;

    fn input<'a>(
        headers: &'a [(&'a str, &'a str)],
        method: &'a str,
        query: &'a str,
        body: &'a [u8],
    ) -> SigningInput<'a> {
        SigningInput {
            method,
            query,
            headers,
            payload: body,
            timestamp: TS,
            service: "cvm",
        }
    }

    #[test]
    fn official_documentation_vector_with_every_intermediate() {
        let headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Host", "cvm.tencentcloudapi.com"),
        ];
        let inp = input(&headers, "POST", "", BODY.as_bytes());
        assert_eq!(
            sha256_hex(BODY.as_bytes()),
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let creq = canonical_request(&inp);
        assert_eq!(
            creq,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            sha256_hex(creq.as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        let date = utc_date(TS).unwrap();
        assert_eq!(credential_scope(&date, "cvm"), "2019-02-25/cvm/tc3_request");
        let keys = key_chain(KEY, &date, "cvm");
        assert_eq!(
            hex::encode(keys.k_date),
            "d1308c81fe71cfd4e06437bbc067b2b8a3d2d8c0e375d547f15c41d5214b395a"
        );
        assert_eq!(
            hex::encode(keys.k_service),
            "3c7cb7c7795393edc14fd2e0e6434a518564b4504b88e94f5d11bf59ba3e7050"
        );
        assert_eq!(
            hex::encode(keys.k_signing),
            "ac658d5dde49e9bfdd14e04e062f66b05d9f637d44b8a8d845327d4a77f666b1"
        );
        let sig = sign(KEY, &inp).unwrap();
        assert_eq!(
            sig.signature,
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
        assert_eq!(
            sig.authorization(ID),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn masked_key_vector_b() {
        let headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Host", "cvm.tencentcloudapi.com"),
        ];
        let sig = sign(
            "Gu5t9xGARNpq86cd98joQYCN3*******",
            &input(&headers, "POST", "", BODY.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            sig.signature,
            "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
        );
    }

    /// The documentation's current example signs `x-tc-action` with its value
    /// lower-cased; the canonical-request hash is the published one, the
    /// signature recomputed with the unmasked key of vector A.
    #[test]
    fn documentation_vector_signing_the_action() {
        let headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Host", "cvm.tencentcloudapi.com"),
            ("X-TC-Action", "DescribeInstances"),
        ];
        let inp = input(&headers, "POST", "", BODY.as_bytes());
        let creq = canonical_request(&inp);
        assert_eq!(
            creq,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\nx-tc-action:describeinstances\n\ncontent-type;host;x-tc-action\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            sha256_hex(creq.as_bytes()),
            "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
        );
        let sig = sign(KEY, &inp).unwrap();
        assert_eq!(sig.signed_headers, "content-type;host;x-tc-action");
        assert_eq!(
            sig.signature,
            "644be983de9a8a3f00db8eadaba61467c3b429e2215758ba897b738ca469fd26"
        );
        // Another action is another signature: the replay the signed action
        // header prevents.
        let terminate = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Host", "cvm.tencentcloudapi.com"),
            ("X-TC-Action", "TerminateInstances"),
        ];
        let other = sign(KEY, &input(&terminate, "POST", "", BODY.as_bytes())).unwrap();
        assert_ne!(other.signature, sig.signature);
    }

    #[test]
    fn python_sdk_post_vector() {
        let headers = [
            ("Content-Type", "application/json"),
            ("Host", "cvm.tencentcloudapi.com"),
        ];
        let inp = input(&headers, "POST", "", BODY.as_bytes());
        assert_eq!(
            sha256_hex(canonical_request(&inp).as_bytes()),
            "df142fa7176428137ac6a6b25b5efcb6b4c08a91fc30d75ecebe47877d3143d8"
        );
        assert_eq!(
            sign(KEY, &inp).unwrap().signature,
            "683bd0b53659853c39699162253251192320a09b3937e27bf8e08a559b1465b8"
        );
    }

    #[test]
    fn python_sdk_get_vector() {
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Host", "cvm.tencentcloudapi.com"),
        ];
        let inp = input(&headers, "GET", "Limit=10&Offset=0", b"");
        assert_eq!(
            sha256_hex(canonical_request(&inp).as_bytes()),
            "91c9c192c14460df6c1ffc69e34e6c5e90708de2a6d282cccf957dbf1aa7f3a7"
        );
        assert_eq!(
            sign(KEY, &inp).unwrap().signature,
            "9867b291561db17491c01f0d7f06be3ccd45e91ecd3ce5434330e00ece036f64"
        );
    }

    #[test]
    fn scope_uses_the_utc_date_not_local_time() {
        // 2019-02-25 23:59:59 UTC is already 2019-02-26 in UTC+8.
        assert_eq!(utc_date(1551139199).unwrap(), "2019-02-25");
        assert_eq!(utc_date(1551139200).unwrap(), "2019-02-26");
    }

    #[test]
    fn host_with_port_is_signed_verbatim() {
        let a = [
            ("Content-Type", "application/json"),
            ("Host", "127.0.0.1:8080"),
        ];
        let b = [
            ("Content-Type", "application/json"),
            ("Host", "127.0.0.1:8081"),
        ];
        let sa = sign(KEY, &input(&a, "POST", "", b"{}")).unwrap();
        let sb = sign(KEY, &input(&b, "POST", "", b"{}")).unwrap();
        assert_ne!(sa.signature, sb.signature);
    }

    #[test]
    fn authorization_round_trips_and_malformed_is_rejected() {
        let headers = [("Content-Type", "application/json"), ("Host", "h")];
        let sig = sign(KEY, &input(&headers, "POST", "", b"{}")).unwrap();
        let parsed = parse_authorization(&sig.authorization(ID)).unwrap();
        assert_eq!(parsed.secret_id, ID);
        assert_eq!(parsed.date, "2019-02-25");
        assert_eq!(parsed.service, "cvm");
        assert_eq!(parsed.signed_headers, vec!["content-type", "host"]);
        assert_eq!(parsed.signature, sig.signature);
        for bad in [
            "",
            "HMAC-SHA256 Credential=a/b/c/tc3_request, SignedHeaders=content-type;host, Signature=00",
            "TC3-HMAC-SHA256 Credential=a/b/tc3_request, SignedHeaders=content-type;host, Signature=00",
            "TC3-HMAC-SHA256 Credential=a/2019-02-25/cvm/tc3_request, SignedHeaders=host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
            "TC3-HMAC-SHA256 Credential=a/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=xyz",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn constant_time_compare() {
        assert!(signatures_equal("abc", "abc"));
        assert!(!signatures_equal("abc", "abd"));
        assert!(!signatures_equal("abc", "ab"));
    }
}

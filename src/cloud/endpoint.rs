//! Where requests go: the endpoint of each service, and the region names that
//! may be put into a host name.

use reqwest::Url;

/// The root domain of the public API.
pub const ROOT_DOMAIN: &str = "tencentcloudapi.com";
pub const DEFAULT_ENDPOINT: &str = "https://cvm.tencentcloudapi.com";

/// Longest region name accepted; real ones are under 20 characters.
const MAX_REGION_LEN: usize = 40;

/// True for a well-formed region name: lower-case letters, then one or more
/// `-`-separated groups of lower-case letters and digits (`ap-guangzhou`,
/// `na-siliconvalley`, `ap-shanghai-fsi`). The region is interpolated into the
/// host of a region-pinned endpoint and sent in `X-TC-Region`, so anything
/// else (dots, slashes, `@`, upper case, spaces) is refused before it reaches
/// a URL or a header.
pub fn valid_region(region: &str) -> bool {
    if region.len() > MAX_REGION_LEN {
        return false;
    }
    let mut parts = region.split('-');
    let head = parts.next().unwrap_or_default();
    if head.len() < 2 || !head.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    let mut groups = 0;
    for part in parts {
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return false;
        }
        groups += 1;
    }
    groups > 0
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `https://<service>.tencentcloudapi.com` (nearest region).
    Default,
    /// `https://<service>.<region>.tencentcloudapi.com`, chosen per call's
    /// region.
    RegionPinned,
    /// Any URL, for example `http://127.0.0.1:8080` (the simulator, which
    /// serves every service at one address).
    Url(Url),
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "" | "default" => Ok(Endpoint::Default),
            "region" => Ok(Endpoint::RegionPinned),
            url => {
                let u = Url::parse(url).map_err(|e| format!("endpoint `{url}`: {e}"))?;
                if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                    return Err(format!(
                        "endpoint `{url}` must be an http(s) URL with a host"
                    ));
                }
                Ok(Endpoint::Url(u))
            }
        }
    }

    /// The URL of `service` for a call in `region`. A region-pinned endpoint
    /// falls back to the default host for an empty or malformed region (the
    /// client refuses malformed regions before it gets here).
    pub fn url(&self, service: &str, region: &str) -> Url {
        let default = || {
            Url::parse(&format!("https://{service}.{ROOT_DOMAIN}"))
                .unwrap_or_else(|_| Url::parse(DEFAULT_ENDPOINT).expect("valid constant"))
        };
        match self {
            Endpoint::Default => default(),
            Endpoint::RegionPinned if valid_region(region) => {
                Url::parse(&format!("https://{service}.{region}.{ROOT_DOMAIN}"))
                    .unwrap_or_else(|_| default())
            }
            Endpoint::RegionPinned => default(),
            Endpoint::Url(u) => u.clone(),
        }
    }
}

/// `host[:port]` as the Host header carries it (port only when not the
/// scheme's default), which is what gets signed.
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_signed_host() {
        assert_eq!(
            host_header(&Endpoint::Default.url("cvm", "ap-guangzhou")),
            "cvm.tencentcloudapi.com"
        );
        assert_eq!(
            host_header(&Endpoint::Default.url("sts", "ap-guangzhou")),
            "sts.tencentcloudapi.com"
        );
        assert_eq!(
            host_header(&Endpoint::RegionPinned.url("cvm", "ap-guangzhou")),
            "cvm.ap-guangzhou.tencentcloudapi.com"
        );
        assert_eq!(
            host_header(&Endpoint::RegionPinned.url("sts", "ap-shanghai-fsi")),
            "sts.ap-shanghai-fsi.tencentcloudapi.com"
        );
        let sim = Endpoint::parse("http://127.0.0.1:18080").unwrap();
        assert_eq!(host_header(&sim.url("cvm", "x")), "127.0.0.1:18080");
        assert_eq!(host_header(&sim.url("sts", "x")), "127.0.0.1:18080");
        // A default port is not part of the Host header.
        assert_eq!(
            host_header(
                &Endpoint::parse("https://h.example:443")
                    .unwrap()
                    .url("cvm", "x")
            ),
            "h.example"
        );
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }

    #[test]
    fn only_well_formed_regions_reach_a_host_name() {
        for ok in [
            "ap-guangzhou",
            "ap-shanghai-fsi",
            "na-siliconvalley",
            "eu-frankfurt",
            "ap-guangzhou-3",
        ] {
            assert!(valid_region(ok), "{ok}");
        }
        for bad in [
            "",
            "ap",
            "a-guangzhou",
            "AP-guangzhou",
            "ap-",
            "ap--guangzhou",
            "-ap-guangzhou",
            "ap-guangzhou.evil.example",
            "ap-guangzhou/x",
            "evil.example#ap-x",
            "ap-guang zhou",
            "ap-guangzhou@evil",
            "ap-ßouth",
            &format!("ap-{}", "x".repeat(60)),
        ] {
            assert!(!valid_region(bad), "{bad}");
        }
        // Even if one slipped through, a pinned endpoint never builds a
        // host from it.
        assert_eq!(
            host_header(&Endpoint::RegionPinned.url("cvm", "evil.example#")),
            "cvm.tencentcloudapi.com"
        );
    }
}

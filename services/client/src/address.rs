//! [`Target`]: what an upstream address flag names. DESIGN.md's forms:
//! `http(s)://host:port`, a comma-separated list of them, or
//! `dns:///host:port` (gRPC's naming convention: every A/AAAA record of the
//! name, resolved again periodically).

use std::fmt;

use tonic::transport::Endpoint;

/// The port a `dns:///` name gets when it names none (gRPC's default).
const DNS_DEFAULT_PORT: u16 = 443;

/// Where a client's calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A fixed set of URLs (one or more).
    Static(Vec<String>),
    /// Every address a DNS name resolves to, kept up to date.
    Dns {
        /// The name to resolve.
        host: String,
        /// The port every address is dialled on.
        port: u16,
    },
}

impl Target {
    /// Parses an address flag's value.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if let Some(name) = value.strip_prefix("dns:") {
            return parse_dns(name);
        }
        let mut urls = Vec::new();
        for url in value.split(',') {
            let url = url.trim();
            if url.is_empty() {
                continue;
            }
            check_url(url)?;
            urls.push(url.to_owned());
        }
        if urls.is_empty() {
            return Err(EXPECTED.to_owned());
        }
        Ok(Self::Static(urls))
    }

    /// Whether calls are spread over more than one fixed URL or a DNS name.
    pub fn is_balanced(&self) -> bool {
        match self {
            Self::Static(urls) => urls.len() > 1,
            Self::Dns { .. } => true,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static(urls) => f.write_str(&urls.join(",")),
            Self::Dns { host, port } => write!(f, "dns:///{host}:{port}"),
        }
    }
}

const EXPECTED: &str = "expected http(s)://host:port, a comma-separated list of them, \
    or dns:///host:port";

fn check_url(url: &str) -> Result<(), String> {
    let endpoint =
        Endpoint::from_shared(url.to_owned()).map_err(|error| format!("{url}: {error}"))?;
    let uri = endpoint.uri();
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(format!("{url}: {EXPECTED}")),
    }
}

/// `dns:///host:port` (no authority: this client's own resolver), or the
/// short `dns:host:port`.
fn parse_dns(name: &str) -> Result<Target, String> {
    let name = match name.strip_prefix("//") {
        Some(rest) => {
            let (authority, name) = rest.split_once('/').unwrap_or((rest, ""));
            if !authority.is_empty() {
                return Err(format!(
                    "dns://{authority}/...: a DNS server of its own is not supported; write dns:///{name}"
                ));
            }
            name
        }
        None => name,
    };
    let (host, port) = split_host_port(name)?;
    if host.is_empty() {
        return Err(format!("dns:///{name}: no host name; {EXPECTED}"));
    }
    Ok(Target::Dns {
        host: host.to_owned(),
        port,
    })
}

/// `host:port`, `host`, `[v6]:port` or `[v6]`.
fn split_host_port(name: &str) -> Result<(&str, u16), String> {
    let parse_port = |port: &str| {
        port.parse::<u16>()
            .map_err(|_| format!("dns:///{name}: {port:?} is not a port"))
    };
    if let Some(rest) = name.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("dns:///{name}: unclosed '['"))?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, parse_port(port)?)),
            None if after.is_empty() => Ok((host, DNS_DEFAULT_PORT)),
            None => Err(format!("dns:///{name}: {EXPECTED}")),
        };
    }
    match name.rsplit_once(':') {
        Some((host, port)) => Ok((host, parse_port(port)?)),
        None => Ok((name, DNS_DEFAULT_PORT)),
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn one_url_a_list_or_a_dns_name() {
        assert_eq!(
            Target::parse("http://127.0.0.1:50051"),
            Ok(Target::Static(vec!["http://127.0.0.1:50051".into()]))
        );
        assert_eq!(
            Target::parse("http://a:1, https://b:2,"),
            Ok(Target::Static(vec![
                "http://a:1".into(),
                "https://b:2".into()
            ]))
        );
        assert_eq!(
            Target::parse("dns:///transform-headless:50051"),
            Ok(Target::Dns {
                host: "transform-headless".into(),
                port: 50051
            })
        );
        assert_eq!(
            Target::parse("dns:[::1]:7"),
            Ok(Target::Dns {
                host: "::1".into(),
                port: 7
            })
        );
        assert_eq!(
            Target::parse("dns:///svc").map(|target| target.to_string()),
            Ok("dns:///svc:443".into())
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_forms_that_work() {
        for bad in [
            "",
            " , ",
            "127.0.0.1:50051",
            "ftp://a:1",
            "http://a:1,nope",
            "dns://8.8.8.8/svc:1",
            "dns:///:80",
            "dns:///svc:http",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }
}

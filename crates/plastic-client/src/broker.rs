//! `mqtt[s]://[user[:password]@]host[:port]`, the form of `--broker` and `PLASTIC_BROKER`; a
//! comma-separated list of them names the brokers of one cluster (docs/scaling.md).

use std::fmt;

use crate::ClientError;

pub const DEFAULT_PORT: u16 = 1883;
pub const DEFAULT_TLS_PORT: u16 = 8883;
/// Brokers in one `--broker` list at most: a cluster's hubs, not a scan of the network.
pub const MAX_BROKERS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `mqtts://`: TLS, with the server's certificate checked against the client's roots.
    pub tls: bool,
}

impl BrokerUrl {
    /// Accepts a full URL or a bare `host[:port]`.
    pub fn parse(text: &str) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: redact(text),
            reason: reason.to_owned(),
        };
        let with_scheme = if text.contains("://") {
            text.to_owned()
        } else {
            format!("mqtt://{text}")
        };
        let url = url::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(bad(&format!(
                    "unknown scheme `{other}`; use mqtt:// or mqtts://"
                )))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if url.path() != "" && url.path() != "/" {
            return Err(bad("a broker URL has no path"));
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        Ok(BrokerUrl {
            host,
            port: url
                .port()
                .unwrap_or(if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT }),
            username: (!url.username().is_empty())
                .then(|| decode(url.username()))
                .flatten(),
            password: url.password().and_then(decode),
            tls,
        })
    }

    /// `URL[,URL...]`: the brokers of one cluster, tried in turn when the connection fails.
    /// They share one scheme and one user: an entry without a scheme takes the first one's,
    /// mixing `mqtt://` and `mqtts://` is refused (a password must not travel in clear to one
    /// broker of the list), and an entry without a user takes the first URL's user and
    /// password; another user or password is refused (a user is the same on every hub of a
    /// cluster). A comma in a password is written `%2C`.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, ClientError> {
        let bad = |reason: String| ClientError::BadUrl {
            url: redact(text),
            reason,
        };
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("an empty entry in the list of brokers".into()));
        }
        if parts.len() > MAX_BROKERS {
            return Err(bad(format!(
                "{} brokers; at most {MAX_BROKERS}",
                parts.len()
            )));
        }
        let first = Self::parse(parts[0]).map_err(|e| redacted(e, text))?;
        let scheme = if first.tls { "mqtts" } else { "mqtt" };
        let mut brokers = vec![first];
        for part in &parts[1..] {
            let b = if part.contains("://") {
                Self::parse(part)
            } else {
                Self::parse(&format!("{scheme}://{part}"))
            };
            brokers.push(b.map_err(|e| redacted(e, text))?);
        }
        if brokers.iter().any(|b| b.tls != brokers[0].tls) {
            return Err(bad(
                "mqtt:// and mqtts:// mixed in one list: use one scheme for every broker".into(),
            ));
        }
        let (user, password) = (brokers[0].username.clone(), brokers[0].password.clone());
        for b in &mut brokers[1..] {
            match (&b.username, &user) {
                (None, _) => {}
                (Some(u), Some(first)) if u == first => {}
                // The name is not echoed: with a raw comma in a password it is part of it.
                (Some(_), _) => {
                    return Err(bad(
                        "every broker of the list must use the first one's user".into(),
                    ))
                }
            }
            if b.password.is_some() && b.password != password {
                return Err(bad(
                    "every broker of the list must use the first one's password".into(),
                ));
            }
            b.username = user.clone();
            b.password = password.clone();
        }
        Ok(brokers)
    }

    pub fn local(port: u16) -> Self {
        BrokerUrl {
            host: "127.0.0.1".into(),
            port,
            username: None,
            password: None,
            tls: false,
        }
    }
}

impl fmt::Display for BrokerUrl {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        match &self.username {
            Some(u) => write!(f, "{scheme}://{u}@{}:{}", self.host, self.port),
            None => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
    }
}

/// `brokers` as `--broker` takes them, without passwords.
pub fn list_to_string(brokers: &[BrokerUrl]) -> String {
    brokers
        .iter()
        .map(BrokerUrl::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The text of one URL or a list without its passwords: everything between the first `://`
/// (or the start) and the last `@` becomes `***` (a password may hold a `,` or a `@`).
fn redact(text: &str) -> String {
    match text.rfind('@') {
        Some(at) => {
            // A `://` after the last `@` belongs to a later entry: the user info starts at 0.
            let start = text.find("://").filter(|&s| s < at).map_or(0, |s| s + 3);
            format!("{}***@{}", &text[..start], &text[at + 1..])
        }
        None => text.to_owned(),
    }
}

/// `e` about one entry of `list`, shown with the whole list redacted (an entry cut at a comma
/// may hold part of a password).
fn redacted(e: ClientError, list: &str) -> ClientError {
    match e {
        ClientError::BadUrl { reason, .. } => ClientError::BadUrl {
            url: redact(list),
            reason,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_type() {
        assert_eq!(
            BrokerUrl::parse("mqtt://127.0.0.1:1883").unwrap(),
            BrokerUrl::local(1883)
        );
        assert_eq!(
            BrokerUrl::parse("127.0.0.1").unwrap(),
            BrokerUrl::local(1883)
        );
        let u = BrokerUrl::parse("mqtt://alice:s%40cret@hub.local:8883").unwrap();
        assert_eq!(
            (u.username.as_deref(), u.password.as_deref()),
            (Some("alice"), Some("s@cret"))
        );
        assert_eq!(u.to_string(), "mqtt://alice@hub.local:8883");
        let t = BrokerUrl::parse("mqtts://alice:pw@hub.local").unwrap();
        assert!(t.tls && t.port == DEFAULT_TLS_PORT);
        assert_eq!(t.to_string(), "mqtts://alice@hub.local:8883");
    }

    #[test]
    fn a_list_names_the_brokers_of_one_cluster_with_one_user() {
        let list = BrokerUrl::parse_list("mqtts://alice:pw@hub-a, hub-b:8884 ,mqtts://alice@hub-c")
            .unwrap();
        assert_eq!(list.len(), 3);
        for b in &list {
            assert_eq!(
                (b.username.as_deref(), b.password.as_deref()),
                (Some("alice"), Some("pw"))
            );
        }
        // A bare entry takes the first one's scheme.
        assert_eq!(
            (list[1].host.as_str(), list[1].port, list[1].tls),
            ("hub-b", 8884, true)
        );
        assert_eq!(
            list_to_string(&list),
            "mqtts://alice@hub-a:8883,mqtts://alice@hub-b:8884,mqtts://alice@hub-c:8883"
        );
        // A password must not go in clear to one broker of the list, nor differ.
        assert!(BrokerUrl::parse_list("mqtts://a:pw@x,mqtt://y").is_err());
        assert!(BrokerUrl::parse_list("mqtt://a:pw@x,mqtt://a:other@y").is_err());
        assert_eq!(
            BrokerUrl::parse_list("127.0.0.1").unwrap(),
            vec![BrokerUrl::local(1883)]
        );
        assert!(BrokerUrl::parse_list("a,,b").is_err());
        assert!(BrokerUrl::parse_list("").is_err());
        assert!(BrokerUrl::parse_list(&vec!["h"; MAX_BROKERS + 1].join(",")).is_err());
        assert!(BrokerUrl::parse_list("a,http://b").is_err());
    }

    #[test]
    fn refuses_bad_urls_without_echoing_passwords() {
        let err = BrokerUrl::parse("http://a:secret@x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown scheme") && !err.contains("secret"),
            "{err}"
        );
        assert!(BrokerUrl::parse("mqtt://").is_err());
        // A comma in a password (written raw instead of %2C) is never echoed.
        let err = BrokerUrl::parse_list("mqtt://alice:12,34@h")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("12") && !err.contains("34"), "{err}");
        let err = BrokerUrl::parse_list("u:pw@h,,mqtt://x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw"), "{err}");
        let err = BrokerUrl::parse("http://a:p@ss@x").unwrap_err().to_string();
        assert!(!err.contains("p@ss") && !err.contains(":p"), "{err}");
        let err = BrokerUrl::parse_list("mqtt://a:one@x,mqtt://b:two@y")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("first one's user") && !err.contains("one@") && !err.contains("two"),
            "{err}"
        );
        assert!(BrokerUrl::parse("mqtt://h:99999").is_err());
    }
}

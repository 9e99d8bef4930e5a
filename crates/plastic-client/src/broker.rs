//! `mqtt[s]://[user[:password]@]host[:port]`, the form of `--broker` and `PLASTIC_BROKER`.

use std::fmt;

use crate::ClientError;

pub const DEFAULT_PORT: u16 = 1883;
pub const DEFAULT_TLS_PORT: u16 = 8883;

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

fn redact(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &text[..s], &text[at + 1..]),
        _ => text.to_owned(),
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
    fn refuses_bad_urls_without_echoing_passwords() {
        let err = BrokerUrl::parse("http://a:secret@x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown scheme") && !err.contains("secret"),
            "{err}"
        );
        assert!(BrokerUrl::parse("mqtt://").is_err());
        assert!(BrokerUrl::parse("mqtt://h:99999").is_err());
    }
}

//! The REST client the commands share: server, bearer token, CA file, and problem+json answers
//! turned into errors that carry the command's exit code.

use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Exit codes: stable, documented in docs/cli.md. Clap exits with 2 on a usage error.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const NOT_FOUND: i32 = 3;
    pub const CONFLICT: i32 = 4;
    pub const INVALID: i32 = 5;
    pub const UNAUTHORIZED: i32 = 6;
}

/// Why a command failed: what to print and which exit code to end with.
#[derive(Debug)]
pub enum Failure {
    /// The server answered with an error status (problem+json when it could).
    Problem {
        status: u16,
        code: String,
        detail: String,
        fields: Vec<(String, String)>,
    },
    /// A check the server answered with a verdict rather than an error (`schema validate`).
    Invalid {
        detail: String,
        fields: Vec<(String, String)>,
    },
    /// What the command found makes it refuse to go on (`import --policy abort`).
    Conflict {
        detail: String,
        fields: Vec<(String, String)>,
    },
    /// The command was used wrongly in a way clap cannot see (a bad file, a bad `--context`).
    Usage(String),
    /// Anything else: the server is unreachable, an answer is not JSON.
    Other(String),
    /// Already reported item by item (`apply`, `import`): only the exit code is left to give.
    Quiet(i32),
}

impl Failure {
    pub fn other(message: impl std::fmt::Display) -> Self {
        Failure::Other(message.to_string())
    }

    pub fn usage(message: impl std::fmt::Display) -> Self {
        Failure::Usage(message.to_string())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Problem { status, .. } => match status {
                404 => exit::NOT_FOUND,
                409 | 412 => exit::CONFLICT,
                400 | 422 => exit::INVALID,
                401 | 403 => exit::UNAUTHORIZED,
                _ => exit::ERROR,
            },
            Failure::Invalid { .. } => exit::INVALID,
            Failure::Conflict { .. } => exit::CONFLICT,
            Failure::Usage(_) => exit::USAGE,
            Failure::Other(_) => exit::ERROR,
            Failure::Quiet(code) => *code,
        }
    }

    /// The failure as one line, for a report that lists many.
    pub fn one_line(&self) -> String {
        match self {
            Failure::Problem {
                status,
                detail,
                fields,
                ..
            } => {
                let mut line = format!("{detail} (HTTP {status})");
                for (field, message) in fields {
                    if !detail.contains(message.as_str()) {
                        line.push_str(&format!("; {field}: {message}"));
                    }
                }
                line
            }
            Failure::Invalid { detail, .. } | Failure::Conflict { detail, .. } => detail.clone(),
            Failure::Usage(message) | Failure::Other(message) => message.clone(),
            Failure::Quiet(code) => format!("exit code {code}"),
        }
    }

    /// A problem answer as the server sent it; a body that is not problem+json keeps the status.
    fn from_answer(status: StatusCode, body: &[u8]) -> Self {
        let problem: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let text = |key: &str| problem.get(key).and_then(Value::as_str).map(str::to_owned);
        let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
        let fields = problem
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|error| {
                        let at = |key| error.get(key).and_then(Value::as_str).unwrap_or("");
                        (at("pointer").to_owned(), at("message").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Failure::Problem {
            status: status.as_u16(),
            code: text("code").unwrap_or_else(|| reason.replace(' ', "_")),
            detail: text("detail").unwrap_or(reason),
            fields,
        }
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// Where the server is and how to prove who we are.
pub struct Connection {
    pub server: String,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// An answer with a success status: the status (201 and 202 mean different things) and its JSON.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(connection: Connection) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("summit-config-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &connection.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| Failure::usage(format!("reading {}: {e}", path.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
            if certificates.is_empty() {
                return Err(Failure::usage(format!(
                    "{}: no PEM certificate",
                    path.display()
                )));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(Failure::other)?;
        Ok(Client {
            http,
            base: connection.server.trim_end_matches('/').to_owned(),
            token: connection.token,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; a status of 400 and above becomes a `Failure::Problem`.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request.send().await.map_err(|e| {
            Failure::other(format!("cannot reach {}: {}", self.base, error_chain(&e)))
        })?;
        let status = response.status();
        if status.is_client_error() || status.is_server_error() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(Failure::from_answer(status, &body));
        }
        Ok(response)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer> {
        let mut request = self.request(method, path).query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request).await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(Failure::other)?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| Failure::other(format!("the server's answer is not JSON: {e}")))?
        };
        Ok(Answer { status, body })
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        Ok(self.call(Method::GET, path, query, None).await?.body)
    }
}

/// reqwest hides the cause (connection refused, certificate unknown) in its source chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Unreserved characters (RFC 3986) stay as they are in a path segment; the rest is escaped.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment, percent-encoded (ids are validated by the server, but never trusted here).
pub fn segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, SEGMENT).to_string()
}

/// The token: `--token` / `SUMMIT_TOKEN`, else `--token-file`, else the admin token the server
/// wrote on its first start, when this user can read it.
pub fn resolve_token(
    token: Option<String>,
    token_file: Option<&Path>,
    admin_token_file: &Path,
) -> Result<Option<String>> {
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        return Ok(Some(token));
    }
    if let Some(path) = token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("reading {}: {e}", path.display())))?;
        return Ok(Some(text.trim().to_owned()));
    }
    Ok(std::fs::read_to_string(admin_token_file)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty()))
}

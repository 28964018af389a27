//! Where a `channel` sends its notices: the channel's entry in the process's YAML, read into
//! a [`Channel`]. The checker reports every problem of an entry at its YAML line; the engine
//! reads the same entry again when it delivers (`engine/src/outbox/channels.rs`), so both agree
//! on what an entry means.
//!
//! ```yaml
//! ledger_webhook: https://ledger.example.invalid/hook     # text: the signed generic webhook
//! supervision_robot:                                      # a WeCom (企业微信) group robot
//!   kind: wecom
//!   url_env: YIMEN_WECOM_SUPERVISION_URL                  # or url: https://qyapi...?key=...
//!   mention_mobiles: ["13800000000"]
//! leadership_robot:                                       # a DingTalk (钉钉) custom robot
//!   kind: dingtalk
//!   url: https://oapi.dingtalk.com/robot/send?access_token=...
//!   secret_env: YIMEN_DINGTALK_SECRET                     # 加签: the SEC... secret
//! applicant_sms:                                          # an SMS gateway, by HTTP template
//!   kind: sms
//!   url: https://sms.example.invalid/send
//!   headers: { Authorization: "Bearer {{ secret }}" }
//!   body: '{"mobile": {{ phone | tojson }}, "content": {{ text | tojson }}}'
//!   phones_from: phone
//!   secret_env: YIMEN_SMS_KEY
//! ```
//!
//! Secrets are never written in the file: the file is deployed, stored with every version and
//! copied into each notice's outbox row. `secret_env` and `url_env` name environment variables
//! of the server, read when a notice is sent.

use crate::check::{CHANNEL_CONFIG, CHANNEL_TEMPLATE, SECRET_IN_CONFIG};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A channel's entry of the YAML, read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    /// Text, or `kind: webhook`: a JSON POST signed with the server's webhook secret.
    Webhook { target: Target },
    /// A WeCom (企业微信) group robot.
    Wecom {
        target: Target,
        format: Format,
        /// `mentioned_mobile_list` of a text message (`@all` for everyone).
        mention_mobiles: Vec<String>,
    },
    /// A DingTalk (钉钉) custom robot, signed (加签) when it has a secret.
    Dingtalk {
        target: Target,
        format: Format,
        /// The title a markdown message shows in the notification (default: its first line).
        title: Option<String>,
        secret_env: Option<String>,
        mention_mobiles: Vec<String>,
        mention_all: bool,
    },
    /// An SMS gateway: one HTTP request per notice, built from templates.
    Sms {
        target: Target,
        method: SmsMethod,
        /// Header name → value template.
        headers: BTreeMap<String, String>,
        /// Body template (none for `GET`).
        body: Option<String>,
        phones: Phones,
        secret_env: Option<String>,
    },
}

/// Where a channel's URL is: written in the YAML, or in an environment variable of the server
/// (a robot's URL carries its access key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Url(String),
    Env(String),
}

/// A robot message's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Text,
    Markdown,
}

/// The HTTP method of an SMS gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SmsMethod {
    Get,
    #[default]
    Post,
    Put,
}

/// Who an SMS goes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phones {
    /// The numbers written in the YAML.
    Fixed(Vec<String>),
    /// The case variable holding the number (text) or numbers (a list of text).
    Var(String),
}

impl Channel {
    /// The channel's kind as the YAML names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Wecom { .. } => "wecom",
            Channel::Dingtalk { .. } => "dingtalk",
            Channel::Sms { .. } => "sms",
        }
    }

    pub fn target(&self) -> &Target {
        match self {
            Channel::Webhook { target }
            | Channel::Wecom { target, .. }
            | Channel::Dingtalk { target, .. }
            | Channel::Sms { target, .. } => target,
        }
    }

    /// The URL as lists show it: a robot's without its query (which carries its key), an
    /// environment variable by name.
    pub fn shown_url(&self) -> String {
        match self.target() {
            Target::Env(name) => format!("${name}"),
            Target::Url(url) => match self {
                Channel::Webhook { .. } => url.clone(),
                _ => url.split(['?', '{']).next().unwrap_or(url).to_string(),
            },
        }
    }
}

/// One problem of a channel's entry: a stable code, the path below the entry's key where it
/// is (empty: the key itself), and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub code: &'static str,
    pub path: Vec<String>,
    pub message: String,
    pub label: String,
    pub help: String,
}

const KINDS: &[&str] = &["webhook", "wecom", "dingtalk", "sms"];

/// The names an SMS template may use.
pub const SMS_TEMPLATE_NAMES: &[&str] = &["text", "phone", "phones", "id", "secret"];

/// Reads a channel's entry (`value` of key `key`). Every problem is returned, not only the
/// first.
pub fn parse(key: &str, value: &Value) -> Result<Channel, Vec<Problem>> {
    let mut problems = Vec::new();
    let channel = match value {
        Value::String(url) => {
            check_url(&mut problems, &[], url, false);
            Some(Channel::Webhook {
                target: Target::Url(url.clone()),
            })
        }
        Value::Object(map) => Entry {
            key,
            map,
            problems: &mut problems,
        }
        .read(),
        _ => {
            problems.push(Problem {
                code: CHANNEL_CONFIG,
                path: vec![],
                message: format!(
                    "`{key}` must be a URL (text) or a channel mapping with a `kind`"
                ),
                label: "neither text nor a mapping".into(),
                help: format!(
                    "write `{key}: \"https://...\"` for a signed webhook, or `{key}: {{ kind: wecom, url_env: ... }}`"
                ),
            });
            None
        }
    };
    match channel {
        Some(c) if problems.is_empty() => Ok(c),
        _ => Err(problems),
    }
}

/// Whether a URL may be sent to: `https://`, or `http://` to this machine (for tests).
pub fn url_allowed(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("https://") {
        return !host(rest).is_empty();
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        return matches!(host(rest), "127.0.0.1" | "localhost" | "[::1]");
    }
    false
}

/// The host of `rest` (a URL after its scheme), without port.
fn host(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// A URL problem, if any; `templated`: the URL may hold `{{ }}` after its host.
fn check_url(problems: &mut Vec<Problem>, path: &[String], url: &str, templated: bool) {
    let fixed = if templated {
        url.split("{{").next().unwrap_or(url)
    } else {
        url
    };
    if url_allowed(fixed) {
        return;
    }
    let path = path.to_vec();
    problems.push(Problem {
        code: CHANNEL_CONFIG,
        path,
        message: format!("`{url}` is not an https URL"),
        label: "not https".into(),
        help: "notices carry case data: write `https://...` (plain `http://` only to 127.0.0.1 or localhost, for tests)".into(),
    });
}

/// Whether `name` can name an environment variable: capitals, digits and `_`.
fn env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The minijinja environment SMS templates are rendered in, by the checker (with sample
/// values) and the engine (with the notice's): undefined names are errors, with a fuel limit.
pub fn sms_environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_fuel(Some(50_000));
    env
}

/// Renders one SMS template with `values`; the error says what is wrong, for people.
pub fn render_sms(
    env: &minijinja::Environment<'_>,
    source: &str,
    values: &Value,
) -> Result<String, String> {
    env.render_str(source, minijinja::Value::from_serialize(values))
        .map_err(|e| {
            let mut text = e.to_string();
            if let Some(detail) = e.detail()
                && !text.contains(detail)
            {
                text = format!("{text}: {detail}");
            }
            text
        })
}

/// Checks an SMS template as the checker does: it parses, names nothing but `values`' keys
/// (and minijinja's global functions), and renders with them.
fn check_sms(env: &minijinja::Environment<'_>, source: &str, values: &Value) -> Result<(), String> {
    const GLOBALS: &[&str] = &["range", "dict", "namespace", "debug"];
    let template = env.template_from_str(source).map_err(|e| e.to_string())?;
    let mut unknown: Vec<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|n| values.get(n).is_none() && !GLOBALS.contains(&n.as_str()))
        .collect();
    unknown.sort();
    if let Some(name) = unknown.first() {
        return Err(format!("`{name}` is not a value it is given"));
    }
    render_sms(env, source, values).map(|_| ())
}

/// The values the checker renders SMS templates with.
fn sample_values() -> Value {
    serde_json::json!({
        "text": "示例通知",
        "phone": "13800000000",
        "phones": ["13800000000"],
        "id": "instance:notice",
        "secret": "secret",
    })
}

/// A mapping entry being read.
struct Entry<'a> {
    key: &'a str,
    map: &'a Map<String, Value>,
    problems: &'a mut Vec<Problem>,
}

impl Entry<'_> {
    fn problem(
        &mut self,
        code: &'static str,
        path: &[&str],
        message: String,
        label: &str,
        help: String,
    ) {
        self.problems.push(Problem {
            code,
            path: path.iter().map(|s| s.to_string()).collect(),
            message,
            label: label.into(),
            help,
        });
    }

    fn read(mut self) -> Option<Channel> {
        let key = self.key;
        let kind = match self.map.get("kind") {
            Some(Value::String(k)) if KINDS.contains(&k.as_str()) => k.clone(),
            Some(Value::String(k)) => {
                let k = k.clone();
                self.problem(
                    CHANNEL_CONFIG,
                    &["kind"],
                    format!("`{key}`: `{k}` is not a kind of channel"),
                    "unknown kind",
                    format!("write one of: {}", KINDS.join(", ")),
                );
                return None;
            }
            _ => {
                self.problem(
                    CHANNEL_CONFIG,
                    &[],
                    format!("channel `{key}` has no `kind`"),
                    "which kind of channel?",
                    format!("add `kind: ...`, one of {}", KINDS.join(", ")),
                );
                return None;
            }
        };
        let allowed: &[&str] = match kind.as_str() {
            "webhook" => &["kind", "url", "url_env"],
            "wecom" => &["kind", "url", "url_env", "format", "mention_mobiles"],
            "dingtalk" => &[
                "kind",
                "url",
                "url_env",
                "format",
                "title",
                "secret_env",
                "mention_mobiles",
                "mention_all",
            ],
            _ => &[
                "kind",
                "url",
                "url_env",
                "method",
                "headers",
                "body",
                "phones",
                "phones_from",
                "secret_env",
            ],
        };
        let map = self.map;
        for name in map.keys() {
            if name == "secret" || name == "token" || name == "key" {
                self.problem(
                    SECRET_IN_CONFIG,
                    &[name.as_str()],
                    format!("`{key}.{name}`: a secret is not written in the configuration"),
                    "a secret in the file",
                    format!(
                        "delete it; set it in the server's environment and write `secret_env: YIMEN_{}_SECRET`",
                        key.to_ascii_uppercase()
                    ),
                );
            } else if !allowed.contains(&name.as_str()) {
                let name = name.clone();
                self.problem(
                    CHANNEL_CONFIG,
                    &[name.as_str()],
                    format!("`{key}.{name}` is not a setting of a {kind} channel"),
                    "unknown setting",
                    format!("settings of a {kind} channel: {}", allowed[1..].join(", ")),
                );
            }
        }
        let target = self.target(kind == "sms")?;
        let channel = match kind.as_str() {
            "webhook" => Channel::Webhook { target },
            "wecom" => Channel::Wecom {
                target,
                format: self.format(),
                mention_mobiles: self.texts("mention_mobiles"),
            },
            "dingtalk" => Channel::Dingtalk {
                target,
                format: self.format(),
                title: self.text("title"),
                secret_env: self.env("secret_env"),
                mention_mobiles: self.texts("mention_mobiles"),
                mention_all: self.flag("mention_all"),
            },
            _ => self.sms(target)?,
        };
        Some(channel)
    }

    /// `url` or `url_env`, exactly one.
    fn target(&mut self, templated: bool) -> Option<Target> {
        let key = self.key;
        match (self.map.get("url"), self.map.get("url_env")) {
            (Some(_), Some(_)) => {
                self.problem(
                    CHANNEL_CONFIG,
                    &["url_env"],
                    format!("channel `{key}` has both `url` and `url_env`"),
                    "one of the two",
                    "keep `url_env` (the URL in the server's environment) or `url`, not both"
                        .into(),
                );
                None
            }
            (Some(Value::String(url)), None) => {
                let url = url.clone();
                check_url(self.problems, &["url".to_string()], &url, templated);
                Some(Target::Url(url))
            }
            (Some(_), None) => {
                self.problem(
                    CHANNEL_CONFIG,
                    &["url"],
                    format!("`{key}.url` must be text"),
                    "not text",
                    "write the URL in quotes: `url: \"https://...\"`".into(),
                );
                None
            }
            (None, Some(_)) => self.env("url_env").map(Target::Env),
            (None, None) => {
                self.problem(
                    CHANNEL_CONFIG,
                    &[],
                    format!("channel `{key}` has no `url`"),
                    "where to send?",
                    "add `url: \"https://...\"`, or `url_env: NAME` to read the URL from the server's environment".into(),
                );
                None
            }
        }
    }

    /// An environment variable's name under `name`, if given.
    fn env(&mut self, name: &str) -> Option<String> {
        let key = self.key;
        match self.map.get(name) {
            None => None,
            Some(Value::String(v)) if env_name(v) => Some(v.clone()),
            Some(v) => {
                let shown = v.to_string();
                self.problem(
                    CHANNEL_CONFIG,
                    &[name],
                    format!("`{key}.{name}`: {shown} is not the name of an environment variable"),
                    "not a variable name",
                    format!(
                        "write the variable's name in capitals, e.g. `{name}: YIMEN_{}`",
                        key.to_ascii_uppercase()
                    ),
                );
                None
            }
        }
    }

    fn text(&mut self, name: &str) -> Option<String> {
        let key = self.key;
        match self.map.get(name) {
            None => None,
            Some(Value::String(v)) => Some(v.clone()),
            Some(_) => {
                self.problem(
                    CHANNEL_CONFIG,
                    &[name],
                    format!("`{key}.{name}` must be text"),
                    "not text",
                    format!("write `{name}: \"...\"`"),
                );
                None
            }
        }
    }

    fn flag(&mut self, name: &str) -> bool {
        let key = self.key;
        match self.map.get(name) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.problem(
                    CHANNEL_CONFIG,
                    &[name],
                    format!("`{key}.{name}` must be true or false"),
                    "not a boolean",
                    format!("write `{name}: true` or leave it out"),
                );
                false
            }
        }
    }

    /// A list of text (mobile numbers).
    fn texts(&mut self, name: &str) -> Vec<String> {
        let key = self.key;
        match self.map.get(name) {
            None => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(_) => {
                self.problem(
                    CHANNEL_CONFIG,
                    &[name],
                    format!("`{key}.{name}` must be a list of mobile numbers (text)"),
                    "not a list of text",
                    format!("write `{name}: [\"13800000000\"]`"),
                );
                Vec::new()
            }
        }
    }

    fn format(&mut self) -> Format {
        let key = self.key;
        match self.map.get("format") {
            None => Format::Text,
            Some(Value::String(f)) if f == "text" => Format::Text,
            Some(Value::String(f)) if f == "markdown" => Format::Markdown,
            Some(v) => {
                let shown = v.to_string();
                self.problem(
                    CHANNEL_CONFIG,
                    &["format"],
                    format!("`{key}.format`: {shown} is not a message format"),
                    "unknown format",
                    "write `format: text` or `format: markdown`".into(),
                );
                Format::Text
            }
        }
    }

    fn sms(&mut self, target: Target) -> Option<Channel> {
        let key = self.key;
        let method = match self.map.get("method") {
            None => SmsMethod::Post,
            Some(Value::String(m)) if m.eq_ignore_ascii_case("post") => SmsMethod::Post,
            Some(Value::String(m)) if m.eq_ignore_ascii_case("put") => SmsMethod::Put,
            Some(Value::String(m)) if m.eq_ignore_ascii_case("get") => SmsMethod::Get,
            Some(v) => {
                let shown = v.to_string();
                self.problem(
                    CHANNEL_CONFIG,
                    &["method"],
                    format!("`{key}.method`: {shown} is not an HTTP method a gateway takes"),
                    "unknown method",
                    "write `method: POST` (the default), `PUT` or `GET`".into(),
                );
                SmsMethod::Post
            }
        };
        let secret_env = self.env("secret_env");
        let env = sms_environment();
        let mut sample = sample_values();
        if secret_env.is_none()
            && let Value::Object(map) = &mut sample
        {
            map.remove("secret");
        }
        let render = |this: &mut Self, path: &[&str], source: &str| {
            if let Err(why) = check_sms(&env, source, &sample) {
                this.problem(
                    CHANNEL_TEMPLATE,
                    path,
                    format!("`{key}.{}` is not a valid template: {why}", path.join(".")),
                    "does not render",
                    format!(
                        "fix the template; it may use {} (`secret` with `secret_env`), and minijinja's filters such as `tojson` and `urlencode`",
                        SMS_TEMPLATE_NAMES
                            .iter()
                            .map(|n| format!("`{{{{ {n} }}}}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        };
        if let Target::Url(url) = &target {
            render(self, &["url"], url);
        }
        let mut headers = BTreeMap::new();
        match self.map.get("headers") {
            None => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    match value {
                        Value::String(v) => {
                            render(self, &["headers", name.as_str()], v);
                            headers.insert(name.clone(), v.clone());
                        }
                        _ => self.problem(
                            CHANNEL_CONFIG,
                            &["headers", name.as_str()],
                            format!("`{key}.headers.{name}` must be text"),
                            "not text",
                            format!("write `{name}: \"...\"`"),
                        ),
                    }
                }
            }
            Some(_) => self.problem(
                CHANNEL_CONFIG,
                &["headers"],
                format!("`{key}.headers` must be a mapping of header names to values"),
                "not a mapping",
                "write e.g. `headers: { Content-Type: application/json }`".into(),
            ),
        }
        let body = self.text("body");
        match (&body, method) {
            (Some(source), SmsMethod::Post | SmsMethod::Put) => render(self, &["body"], source),
            (None, SmsMethod::Post | SmsMethod::Put) => self.problem(
                CHANNEL_CONFIG,
                &[],
                format!("SMS channel `{key}` has no `body`"),
                "what to send?",
                "add `body: '{\"mobile\": {{ phone | tojson }}, \"content\": {{ text | tojson }}}'` in the form your gateway takes".into(),
            ),
            (Some(_), SmsMethod::Get) => self.problem(
                CHANNEL_CONFIG,
                &["body"],
                format!("`{key}.body`: a GET request has no body"),
                "not sent",
                "put the values in the URL (`url: \"https://...?mobile={{ phone | urlencode }}\"`), or use `method: POST`".into(),
            ),
            (None, SmsMethod::Get) => {}
        }
        let phones = match (self.map.get("phones"), self.map.get("phones_from")) {
            (Some(_), Some(_)) => {
                self.problem(
                    CHANNEL_CONFIG,
                    &["phones_from"],
                    format!("SMS channel `{key}` has both `phones` and `phones_from`"),
                    "one of the two",
                    "keep `phones_from` (a case variable) or `phones` (fixed numbers)".into(),
                );
                None
            }
            (Some(_), None) => {
                let list = self.texts("phones");
                if list.is_empty() {
                    self.problem(
                        CHANNEL_CONFIG,
                        &["phones"],
                        format!("`{key}.phones` names no number"),
                        "empty",
                        "write `phones: [\"13800000000\"]`".into(),
                    );
                }
                Some(Phones::Fixed(list))
            }
            (None, Some(Value::String(var))) => Some(Phones::Var(var.clone())),
            (None, Some(_)) => {
                self.problem(
                    CHANNEL_CONFIG,
                    &["phones_from"],
                    format!("`{key}.phones_from` must name a variable of the process"),
                    "not a name",
                    "write e.g. `phones_from: phone`".into(),
                );
                None
            }
            (None, None) => {
                self.problem(
                    CHANNEL_CONFIG,
                    &[],
                    format!("SMS channel `{key}` has no recipients"),
                    "to whom?",
                    "add `phones_from: <variable>` (the case's number) or `phones: [\"...\"]`"
                        .into(),
                );
                None
            }
        };
        Some(Channel::Sms {
            target,
            method,
            headers,
            body,
            phones: phones?,
            secret_env,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(value: Value) -> Vec<(String, &'static str)> {
        parse("ch", &value)
            .expect_err("a problem")
            .into_iter()
            .map(|p| (p.path.join("."), p.code))
            .collect()
    }

    #[test]
    fn text_is_the_generic_webhook() {
        assert_eq!(
            parse("ch", &json!("https://x.example/hook")).unwrap(),
            Channel::Webhook {
                target: Target::Url("https://x.example/hook".into())
            }
        );
        assert!(parse("ch", &json!("http://127.0.0.1:8080/hook")).is_ok());
        assert_eq!(
            problems(json!("http://x.example/hook")),
            [("".into(), CHANNEL_CONFIG)]
        );
        assert_eq!(problems(json!(3)), [("".into(), CHANNEL_CONFIG)]);
    }

    #[test]
    fn urls_must_be_https_or_loopback() {
        for ok in [
            "https://a.example",
            "HTTPS://a.example/x?y=1",
            "http://localhost:1/x",
            "http://127.0.0.1/x",
            "http://[::1]:9/x",
        ] {
            assert!(url_allowed(ok), "{ok}");
        }
        for bad in [
            "http://a.example",
            "http://127.0.0.1.evil.example/",
            "http://localhost.evil.example/",
            "ftp://a.example",
            "https://",
            "a.example",
        ] {
            assert!(!url_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn robots_read_their_settings() {
        let c = parse(
            "r",
            &json!({"kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=t",
                    "secret_env": "YIMEN_DT", "format": "markdown", "mention_all": true}),
        )
        .unwrap();
        assert_eq!(
            c,
            Channel::Dingtalk {
                target: Target::Url("https://oapi.dingtalk.com/robot/send?access_token=t".into()),
                format: Format::Markdown,
                title: None,
                secret_env: Some("YIMEN_DT".into()),
                mention_mobiles: vec![],
                mention_all: true,
            }
        );
        assert_eq!(c.shown_url(), "https://oapi.dingtalk.com/robot/send");
        let w = parse("w", &json!({"kind": "wecom", "url_env": "YIMEN_W"})).unwrap();
        assert_eq!(w.shown_url(), "$YIMEN_W");
        // Stored in an outbox row and read back.
        let back: Channel = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn each_mistake_is_reported_where_it_is() {
        assert_eq!(
            problems(json!({"url": "https://a.example"})),
            [("".into(), CHANNEL_CONFIG)]
        );
        assert_eq!(
            problems(json!({"kind": "wechat", "url": "https://a.example"})),
            [("kind".into(), CHANNEL_CONFIG)]
        );
        assert_eq!(
            problems(json!({"kind": "wecom"})),
            [("".into(), CHANNEL_CONFIG)]
        );
        assert_eq!(
            problems(
                json!({"kind": "dingtalk", "url": "https://a.example", "secret": "SEC1", "colour": 1})
            ),
            [
                ("colour".into(), CHANNEL_CONFIG),
                ("secret".into(), SECRET_IN_CONFIG)
            ]
        );
        assert_eq!(
            problems(
                json!({"kind": "dingtalk", "url": "https://a.example", "secret_env": "lower"})
            ),
            [("secret_env".into(), CHANNEL_CONFIG)]
        );
        assert_eq!(
            problems(json!({"kind": "wecom", "url": "http://a.example", "format": "html"})),
            [
                ("url".into(), CHANNEL_CONFIG),
                ("format".into(), CHANNEL_CONFIG)
            ]
        );
    }

    #[test]
    fn sms_templates_are_rendered_by_the_checker() {
        let ok = json!({"kind": "sms", "url": "https://sms.example/send?to={{ phone | urlencode }}",
            "headers": {"Authorization": "Bearer {{ secret }}"}, "secret_env": "YIMEN_SMS_KEY",
            "body": "{\"to\": {{ phones | tojson }}, \"text\": {{ text | tojson }}}",
            "phones_from": "phone"});
        assert!(parse("s", &ok).is_ok(), "{:?}", parse("s", &ok));
        assert_eq!(
            problems(
                json!({"kind": "sms", "url": "https://sms.example", "body": "{{ name }}",
                "phones": ["1"]})
            ),
            [("body".into(), CHANNEL_TEMPLATE)]
        );
        assert_eq!(
            problems(
                json!({"kind": "sms", "url": "https://sms.example", "body": "{{ content | tojson }}",
                "phones": ["1"]})
            ),
            [("body".into(), CHANNEL_TEMPLATE)]
        );
        assert_eq!(
            problems(
                json!({"kind": "sms", "url": "https://sms.example", "body": "{{ text | nofilter }}",
                "phones": ["1"]})
            ),
            [("body".into(), CHANNEL_TEMPLATE)]
        );
        assert_eq!(
            problems(
                json!({"kind": "sms", "url": "https://sms.example", "body": "{% if %}",
                "phones_from": "phone"})
            ),
            [("body".into(), CHANNEL_TEMPLATE)]
        );
        // `secret` only with `secret_env`.
        assert_eq!(
            problems(json!({"kind": "sms", "url": "https://sms.example",
                "headers": {"X-Key": "{{ secret }}"}, "body": "{{ text }}", "phones": ["1"]})),
            [("headers.X-Key".into(), CHANNEL_TEMPLATE)]
        );
        assert_eq!(
            problems(json!({"kind": "sms", "url": "https://sms.example", "body": "{{ text }}"})),
            [("".into(), CHANNEL_CONFIG)]
        );
        assert_eq!(
            problems(json!({"kind": "sms", "url": "https://sms.example", "phones": ["1"]})),
            [("".into(), CHANNEL_CONFIG)]
        );
    }
}

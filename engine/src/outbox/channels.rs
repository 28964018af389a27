//! Sending a notice to a channel whose configuration entry is a mapping
//! ([`yimen_dsl::channel::Channel`], `docs/channels.md`): a WeCom (企业微信) group robot, a
//! DingTalk (钉钉) custom robot, or an SMS gateway described by templates.
//!
//! - WeCom: `POST <url>` with `{"msgtype":"text","text":{"content":…,"mentioned_mobile_list":[…]}}`
//!   or `{"msgtype":"markdown","markdown":{"content":…}}`.
//! - DingTalk: `POST <url>&timestamp=<ms>&sign=<sign>` (the query only with a secret, 加签) with
//!   `{"msgtype":"text","text":{"content":…},"at":{"atMobiles":[…],"isAtAll":…}}` or
//!   `{"msgtype":"markdown","markdown":{"title":…,"text":…},"at":{…}}`; `sign` is
//!   base64(HMAC-SHA256(key = secret, "<ms>\n<secret>")), URL-encoded.
//! - Both robots answer HTTP 200 even when they refuse: `{"errcode": non-zero, "errmsg": …}`
//!   counts as a failed attempt (retried), the errmsg kept as the row's error.
//! - SMS: the URL, headers and body rendered from the entry's templates with `text`, `phone`
//!   (the numbers joined by commas), `phones` (the list), `id` (the de-duplication id) and
//!   `secret`; any 2xx answer is success.
//!
//! Secrets and URLs named by `secret_env` / `url_env` are read from the server's environment
//! (through [`EnvLookup`]) when the notice is sent, never stored.

use super::DeliveryError;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;
use std::sync::Arc;
use yimen_dsl::channel::{Channel, Format, Phones, SmsMethod, Target};

/// Reads an environment variable of the server (a closure, so tests give their own).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The server's environment.
pub fn process_env() -> EnvLookup {
    Arc::new(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// Longest error text kept from a receiver's answer.
const ANSWER_CHARS: usize = 200;

/// The body of a WeCom group robot's message.
pub fn wecom_body(format: Format, mention_mobiles: &[String], text: &str) -> Json {
    match format {
        Format::Text if mention_mobiles.is_empty() => {
            json!({"msgtype": "text", "text": {"content": text}})
        }
        Format::Text => json!({"msgtype": "text", "text": {
            "content": text,
            "mentioned_mobile_list": mention_mobiles,
        }}),
        Format::Markdown => json!({"msgtype": "markdown", "markdown": {"content": text}}),
    }
}

/// The body of a DingTalk custom robot's message.
pub fn dingtalk_body(
    format: Format,
    title: Option<&str>,
    mention_mobiles: &[String],
    mention_all: bool,
    text: &str,
) -> Json {
    let at = json!({"atMobiles": mention_mobiles, "isAtAll": mention_all});
    match format {
        Format::Text => json!({"msgtype": "text", "text": {"content": text}, "at": at}),
        Format::Markdown => {
            let title = title.map(str::to_string).unwrap_or_else(|| {
                let first = text.lines().next().unwrap_or_default();
                first
                    .trim_start_matches(['#', ' '])
                    .chars()
                    .take(32)
                    .collect()
            });
            json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}, "at": at})
        }
    }
}

/// DingTalk's 加签: base64 of HMAC-SHA256 with `secret` as key over `"<timestamp>\n<secret>"`
/// (not yet URL-encoded).
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 takes keys of any length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `url` with `timestamp` and `sign` appended to its query (form-URL-encoded, as DingTalk's
/// examples encode them).
pub fn dingtalk_signed_url(
    url: &str,
    secret: &str,
    timestamp_ms: i64,
) -> Result<String, DeliveryError> {
    let mut parsed =
        reqwest::Url::parse(url).map_err(|e| DeliveryError::Config(format!("URL: {e}")))?;
    parsed
        .query_pairs_mut()
        .append_pair("timestamp", &timestamp_ms.to_string())
        .append_pair("sign", &dingtalk_sign(secret, timestamp_ms));
    Ok(parsed.into())
}

/// Whether a robot's answer says it took the message: `errcode` 0. Anything else is an error
/// carrying the robot's `errmsg` (cut short), never the message sent.
pub fn robot_answer(robot: &'static str, body: &[u8]) -> Result<(), DeliveryError> {
    let answer: Json = serde_json::from_slice(body).map_err(|_| DeliveryError::Refused {
        robot,
        errcode: None,
        errmsg: "the answer is not the robot's JSON".into(),
    })?;
    match answer.get("errcode").and_then(Json::as_i64) {
        Some(0) => Ok(()),
        code => Err(DeliveryError::Refused {
            robot,
            errcode: code,
            errmsg: answer
                .get("errmsg")
                .and_then(Json::as_str)
                .unwrap_or("(no errmsg)")
                .chars()
                .take(ANSWER_CHARS)
                .collect(),
        }),
    }
}

/// An SMS gateway request, built from a channel's templates.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsRequest {
    pub method: SmsMethod,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// What one notice to a channel needs besides the channel: its text, de-duplication id, the
/// numbers the runtime took from the case (`to`), and the server's environment.
#[derive(Clone, Copy)]
pub struct Notice<'a> {
    pub text: &'a str,
    pub dedup_key: &'a str,
    pub to: Option<&'a Json>,
    pub env: &'a EnvLookup,
}

impl Notice<'_> {
    fn secret(
        &self,
        channel: &str,
        name: &Option<String>,
    ) -> Result<Option<String>, DeliveryError> {
        match name {
            None => Ok(None),
            Some(var) => (self.env)(var)
                .map(Some)
                .ok_or_else(|| DeliveryError::MissingEnv {
                    channel: channel.to_string(),
                    var: var.clone(),
                }),
        }
    }

    fn url(&self, channel: &str, target: &Target) -> Result<String, DeliveryError> {
        match target {
            Target::Url(url) => Ok(url.clone()),
            Target::Env(var) => {
                let url = (self.env)(var).ok_or_else(|| DeliveryError::MissingEnv {
                    channel: channel.to_string(),
                    var: var.clone(),
                })?;
                if yimen_dsl::channel::url_allowed(&url) {
                    Ok(url)
                } else {
                    Err(DeliveryError::Config(format!(
                        "the URL in ${var} is not https; set it to https://..."
                    )))
                }
            }
        }
    }
}

/// Builds the request of an SMS channel for `notice`.
pub fn sms_request(
    channel: &str,
    sms: &Channel,
    notice: &Notice<'_>,
) -> Result<SmsRequest, DeliveryError> {
    let Channel::Sms {
        target,
        method,
        headers,
        body,
        phones,
        secret_env,
    } = sms
    else {
        return Err(DeliveryError::Config("not an SMS channel".into()));
    };
    let numbers: Vec<String> = match phones {
        Phones::Fixed(list) => list.clone(),
        Phones::Var(_) => notice
            .to
            .and_then(Json::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if numbers.is_empty() {
        let var = match phones {
            Phones::Var(v) => v.as_str(),
            Phones::Fixed(_) => "phones",
        };
        return Err(DeliveryError::Config(format!(
            "no mobile number to send to: `{var}` of the case is empty"
        )));
    }
    let mut values = json!({
        "text": notice.text,
        "phone": numbers.join(","),
        "phones": numbers,
        "id": notice.dedup_key,
    });
    if let Some(secret) = notice.secret(channel, secret_env)?
        && let Json::Object(map) = &mut values
    {
        map.insert("secret".into(), json!(secret));
    }
    let env = yimen_dsl::channel::sms_environment();
    let render = |what: &str, source: &str| {
        yimen_dsl::channel::render_sms(&env, source, &values)
            .map_err(|why| DeliveryError::Template(format!("{what}: {why}")))
    };
    let url = match target {
        Target::Url(url) => render("url", url)?,
        Target::Env(_) => notice.url(channel, target)?,
    };
    if !yimen_dsl::channel::url_allowed(&url) {
        return Err(DeliveryError::Config(format!(
            "the rendered URL `{}` is not https",
            url.split('?').next().unwrap_or_default()
        )));
    }
    let headers = headers
        .iter()
        .map(|(name, value)| Ok((name.clone(), render(name, value)?)))
        .collect::<Result<Vec<_>, DeliveryError>>()?;
    let body = body.as_deref().map(|b| render("body", b)).transpose()?;
    Ok(SmsRequest {
        method: *method,
        url,
        headers,
        body,
    })
}

/// The URL, body and answer check of a robot channel for `notice`.
pub struct RobotRequest {
    pub url: String,
    pub body: Json,
    pub robot: &'static str,
}

/// Builds the request of a WeCom or DingTalk channel; `now_ms` is DingTalk's timestamp.
pub fn robot_request(
    channel: &str,
    robot: &Channel,
    notice: &Notice<'_>,
    now_ms: i64,
) -> Result<RobotRequest, DeliveryError> {
    match robot {
        Channel::Wecom {
            target,
            format,
            mention_mobiles,
        } => Ok(RobotRequest {
            url: notice.url(channel, target)?,
            body: wecom_body(*format, mention_mobiles, notice.text),
            robot: "WeCom robot",
        }),
        Channel::Dingtalk {
            target,
            format,
            title,
            secret_env,
            mention_mobiles,
            mention_all,
        } => {
            let url = notice.url(channel, target)?;
            let url = match notice.secret(channel, secret_env)? {
                Some(secret) => dingtalk_signed_url(&url, &secret, now_ms)?,
                None => url,
            };
            Ok(RobotRequest {
                url,
                body: dingtalk_body(
                    *format,
                    title.as_deref(),
                    mention_mobiles,
                    *mention_all,
                    notice.text,
                ),
                robot: "DingTalk robot",
            })
        }
        _ => Err(DeliveryError::Config("not a robot channel".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_sign_matches_its_documented_computation() {
        // python3: base64.b64encode(hmac.new(b"SECabc", b"1700000000000\nSECabc",
        //          hashlib.sha256).digest())
        let sign = dingtalk_sign("SECabc", 1_700_000_000_000);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"SECabc").unwrap();
        mac.update(b"1700000000000\nSECabc");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(sign, expected);
        let url = dingtalk_signed_url(
            "https://oapi.dingtalk.com/robot/send?access_token=t",
            "SECabc",
            1_700_000_000_000,
        )
        .unwrap();
        let (base, query) = url.split_once("&timestamp=").unwrap();
        assert_eq!(base, "https://oapi.dingtalk.com/robot/send?access_token=t");
        let (ts, sign_q) = query.split_once("&sign=").unwrap();
        assert_eq!(ts, "1700000000000");
        // '+', '/' and '=' of base64 are encoded.
        assert!(!sign_q.contains(['+', '/', '=']), "{sign_q}");
        let decoded: String = reqwest::Url::parse(&url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "sign")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        assert_eq!(decoded, sign);
    }

    #[test]
    fn robots_refuse_with_an_errcode() {
        assert!(robot_answer("WeCom robot", br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        let err = robot_answer(
            "DingTalk robot",
            br#"{"errcode":310000,"errmsg":"sign not match"}"#,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "DingTalk robot refused: errcode 310000: sign not match"
        );
        assert!(robot_answer("WeCom robot", b"<html>").is_err());
        assert!(robot_answer("WeCom robot", br#"{"errmsg":"ok"}"#).is_err());
    }

    #[test]
    fn sms_requests_are_built_from_templates() {
        let env: EnvLookup = Arc::new(|n| (n == "K").then(|| "key-1".to_string()));
        let sms = yimen_dsl::channel::parse(
            "s",
            &json!({"kind": "sms", "url": "https://sms.example/send?sig={{ secret | urlencode }}",
                "headers": {"X-To": "{{ phone }}"}, "secret_env": "K",
                "body": "{\"to\": {{ phones | tojson }}, \"text\": {{ text | tojson }}, \"id\": \"{{ id }}\"}",
                "phones_from": "phone"}),
        )
        .unwrap();
        let to = json!(["13800138000", "13900139000"]);
        let notice = Notice {
            text: "您的申请已办结\"",
            dedup_key: "i1:o1",
            to: Some(&to),
            env: &env,
        };
        let req = sms_request("s", &sms, &notice).unwrap();
        assert_eq!(req.url, "https://sms.example/send?sig=key-1");
        assert_eq!(
            req.headers,
            vec![("X-To".into(), "13800138000,13900139000".into())]
        );
        let body: Json = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"to": ["13800138000", "13900139000"], "text": "您的申请已办结\"", "id": "i1:o1"})
        );
        // Without the secret in the environment: an error naming the variable.
        let none: EnvLookup = Arc::new(|_| None);
        let err = sms_request(
            "s",
            &sms,
            &Notice {
                env: &none,
                ..notice
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("$K"), "{err}");
        let empty = json!([]);
        let err = sms_request(
            "s",
            &sms,
            &Notice {
                to: Some(&empty),
                env: &env,
                ..notice
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`phone` of the case is empty"), "{err}");
    }
}

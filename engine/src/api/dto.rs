//! Request and response bodies of the API, as the OpenAPI document describes them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// `POST /definitions`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// File name of the process (for diagnostics), e.g. `social_assistance.flow`.
    #[serde(default)]
    pub file: Option<String>,
    /// The process source text.
    pub source: String,
    /// Files the process reads (YAML configuration, templates) by path relative to it.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A deployed version; the latest when absent.
    pub version: Option<i64>,
}

/// `POST /instances`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// Process key.
    pub process: String,
    /// Starting again with the same business key returns the existing instance. At most 256
    /// characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 256, min_length = 1)]
    pub business_key: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
}

/// `GET /instances`: find cases. Empty parameters count as absent.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaseSearchQuery {
    /// A business key or its beginning, part of the name of a person a case concerns (a
    /// variable declared `personal(name)`), or a whole ID number (`personal(id_number)`,
    /// matched by its keyed hash: part of one finds nothing).
    pub q: Option<String>,
    /// Process key.
    pub process: Option<String>,
    /// `running`, `completed`, `cancelled` or `incident`.
    pub status: Option<String>,
    /// Cases with a task in this organisation unit.
    pub unit: Option<String>,
    /// Registered on or after this day (`2026-09-01`, in the calendar's zone) or instant
    /// (RFC 3339).
    pub from: Option<String>,
    /// Registered on or before this day or instant.
    pub to: Option<String>,
    /// Page, from 1 (default 1).
    pub page: Option<u32>,
    /// Cases per page, 1 to 100 (default 20).
    pub page_size: Option<u32>,
}

/// The page asked for by `page` (from 1, default 1) and `page_size` (1 to
/// [`MAX_PAGE_SIZE`](crate::engine::MAX_PAGE_SIZE), default 20): one rule for every list that
/// pages. 400 naming the parameter otherwise.
pub fn paging(page: Option<u32>, page_size: Option<u32>) -> Result<(u32, u32), super::ApiError> {
    let page = page.unwrap_or(1);
    if page == 0 {
        return Err(super::ApiError::bad_request("`page` counts from 1"));
    }
    let max = crate::engine::MAX_PAGE_SIZE;
    let page_size = page_size.unwrap_or(20);
    if page_size == 0 || page_size > max {
        return Err(super::ApiError::bad_request(format!(
            "`page_size` is 1 to {max}; ask for the next `page` for more"
        )));
    }
    Ok((page, page_size))
}

/// `GET /instances/{id}`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstanceQuery {
    /// `true`: the case data unmasked (only for the roles that work the case's tasks and the
    /// overseeing roles; every such read is recorded, `GET /personal-data-reads`).
    pub unmasked: Option<bool>,
}

/// `GET /personal-data-reads`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PersonalDataReadsQuery {
    /// Only the reads of this instance.
    pub instance: Option<String>,
    /// Page, from 1 (default 1).
    pub page: Option<u32>,
    /// Reads per page, 1 to 100 (default 20).
    pub page_size: Option<u32>,
}

/// The recorded reads of personal data unmasked, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonalDataReadList {
    pub reads: Vec<crate::engine::PersonalDataRead>,
    /// Reads in all pages.
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
}

/// `POST /instances/{id}/messages/{name}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// The message payload: the variables the waiting step sets.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
}

/// `POST /instances/{id}/cancel`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /tasks/claim`: fetch-and-lock.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Queue names: a role (`window`) or a keyed role (`department:civil_affairs`).
    pub queues: Vec<String>,
    /// Label of the automated worker, recorded with the claim. It decides nothing: the claim
    /// is the token's (its name is what the history records as actor and what a task's
    /// assignee is compared with). At most 128 characters, no control characters.
    #[schema(max_length = 128, min_length = 1)]
    pub worker: String,
    /// Most tasks to return (1..=100).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 100)]
    pub max: u32,
    /// Lease length; after it the task may be claimed by someone else.
    #[serde(default = "sixty")]
    pub lease_seconds: u32,
    /// Long poll: wait up to this long for a task (0 = answer at once).
    #[serde(default)]
    pub wait_seconds: u32,
}

/// `POST /tasks/{id}/claim`: a claim of one task by its id.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimTaskBody {
    /// Lease length, as in fetch-and-lock; after it the task may be claimed by someone else
    /// (extend it with `POST /tasks/{id}/extend` while the work goes on).
    #[serde(default = "sixty")]
    pub lease_seconds: u32,
    /// A label recorded with the claim (a desk, a browser), as in fetch-and-lock; it decides
    /// nothing. At most 128 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub worker: Option<String>,
}

fn one() -> u32 {
    1
}
fn sixty() -> u32 {
    60
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClaimResponse {
    pub tasks: Vec<ClaimedTask>,
}

/// A claimed task with its fencing lock token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClaimedTask {
    pub id: String,
    pub instance_id: String,
    pub process: String,
    pub node: String,
    pub label: Option<String>,
    pub queue: String,
    /// Organisation unit of the case (the value of its role's scope variable), for scoped
    /// queues.
    pub org_unit: Option<String>,
    /// Every later call on this task must carry it; a newer claim makes it useless.
    pub lock_token: String,
    /// RFC 3339.
    pub lease_expires_at: String,
    pub outcomes: Vec<String>,
    /// Variables the completion must or may set.
    pub fields: Vec<TaskField>,
    /// Case data the worker needs to do the task.
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
    /// The element of a for-each task.
    #[schema(value_type = Object)]
    pub item: Option<Value>,
    /// Failures so far.
    pub attempts: u32,
}

/// A variable a task's completion sets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskField {
    pub name: String,
    /// `text`, `integer`, `decimal`, `boolean`, `date`, `list<...>`, an enum name ...
    #[serde(rename = "type")]
    pub ty: String,
    pub required: bool,
    pub label: Option<String>,
}

/// `POST /tasks/{id}/complete`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    pub lock_token: String,
    /// One of the task's outcomes (may be omitted when the task has exactly one).
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
}

/// `POST /tasks/complete`: several completions in one request.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteManyBody {
    /// 1 to 100 completions; each is its own event with its own result.
    #[schema(min_items = 1, max_items = 100)]
    pub completions: Vec<CompletionItem>,
}

/// One completion of `POST /tasks/complete`: the body of `POST /tasks/{id}/complete` with the
/// task's id.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionItem {
    pub task_id: String,
    pub lock_token: String,
    /// One of the task's outcomes (may be omitted when the task has exactly one).
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
}

impl CompletionItem {
    /// The body `POST /tasks/{id}/complete` takes for this completion.
    pub fn completion(self) -> CompleteBody {
        CompleteBody {
            lock_token: self.lock_token,
            outcome: self.outcome,
            variables: self.variables,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CompleteManyResponse {
    /// One result per completion, in the order given.
    pub results: Vec<CompletionResult>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CompletionResult {
    pub task_id: String,
    /// The status `POST /tasks/{id}/complete` would have answered for this completion alone:
    /// 200, or 403, 404, 409, 422 (then nothing of it changed).
    pub status: u16,
    /// On 200: the task's instance afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<CompletedInstance>,
    /// Otherwise: why, as in an error response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<super::error::ErrorDetail>,
}

/// An instance after a completion, briefly.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CompletedInstance {
    pub id: String,
    /// `running`, `completed`, `cancelled` or `incident`.
    pub status: String,
    /// The end's result once the instance has ended.
    pub result: Option<String>,
}

/// `POST /tasks/{id}/extend`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    pub lock_token: String,
    #[serde(default = "sixty")]
    pub lease_seconds: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExtendResponse {
    pub lock_token: String,
    pub lease_expires_at: String,
}

/// `POST /tasks/{id}/release`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    pub lock_token: String,
}

/// `POST /tasks/{id}/fail`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    pub lock_token: String,
    /// What went wrong (shown on the incident).
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FailResponse {
    /// `retry`: claimable again at `retry_at`; `incident`: raised on the instance.
    pub state: String,
    pub retry_at: Option<String>,
    pub attempts: u32,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskListQuery {
    /// Queue name; all queues of the token when absent.
    pub queue: Option<String>,
    /// `open`, `claimed`, `completed`, `failed`, `cancelled`.
    pub state: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    #[schema(value_type = Vec<crate::engine::TaskView>)]
    pub tasks: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// First day (`2026-09-01`, in the calendar's zone, Asia/Shanghai) or instant (RFC 3339),
    /// inclusive.
    pub from: Option<String>,
    /// Last day or instant, inclusive (`from=2026-09-01&to=2026-09-01` is that whole day).
    pub to: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// `POST /tokens`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// 1 to 100 characters, no control characters.
    #[schema(max_length = 100, min_length = 1)]
    pub name: String,
    /// `admin`, or names of roles the processes declare (`clerk`; a keyed role with its key,
    /// `office:east`).
    pub roles: Vec<String>,
    /// Organisation units the token is limited to (values of the variables that scope the
    /// processes' roles, `per <variable>`); empty = all.
    #[serde(default)]
    pub org_units: Vec<String>,
    /// How long the token works: a whole number and `d` (days), `h` (hours) or `m`
    /// (minutes), e.g. `90d`; at most `3650d`. Without it the token does not expire; a token
    /// of an automated worker should (and be rotated before it does).
    #[serde(default)]
    #[schema(example = "90d", pattern = "^[0-9]+[dhm]$")]
    pub expires_in: Option<String>,
}

/// `POST /tokens/{name_or_id}/rotate`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the new secret works (`90d`, `12h`, `30m`; at most `3650d`). Without it, as
    /// long as the old one was made to work; a token that did not expire still does not.
    #[serde(default)]
    #[schema(example = "90d", pattern = "^[0-9]+[dhm]$")]
    pub expires_in: Option<String>,
    /// How long the old secret keeps working beside the new one, so that a worker can switch
    /// (`1h`, `30m`; at most `7d`). Without it (or `0m`) the old secret stops at once.
    #[serde(default)]
    #[schema(example = "1h", pattern = "^[0-9]+[dhm]$")]
    pub overlap: Option<String>,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    /// Organisation units the token is limited to; empty = all.
    pub org_units: Vec<String>,
    pub created_at: String,
    /// When it was revoked; for a token replaced by a rotation with an overlap, when it stops
    /// working (then in the future).
    pub revoked_at: Option<String>,
    /// When it stops working; `null`: it does not expire.
    pub expires_at: Option<String>,
    /// `active`, `expired` or `revoked`, by the server's clock.
    pub state: String,
}

/// A new token: `token` is shown only in this answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
}

/// A rotated token: the new secret (`token`, shown only in this answer) and the token it
/// replaces, which works until its `revoked_at`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenRotated {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
    pub replaced: TokenInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// A refused call, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Refusal {
    pub at: String,
    pub token: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub reason: String,
    /// The client's address, when known.
    pub address: Option<String>,
    /// Refused calls this entry stands for: those of one address, token, status and reason
    /// in one minute are one entry (`at` the last of them).
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefusalList {
    pub refusals: Vec<Refusal>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer.
    pub status: String,
    pub version: String,
    pub database: String,
}

/// `POST /tasks/{id}/release`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Released {
    /// The task given back.
    pub released: String,
}

/// `GET /definitions`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DefinitionList {
    pub definitions: Vec<crate::engine::Deployment>,
}

/// `GET /instances/{id}/history`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryList {
    pub entries: Vec<crate::ledger::HistoryEntry>,
}

/// `GET /ledger` as JSON.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerEntries {
    pub entries: Vec<crate::ledger::HistoryEntry>,
}

/// `GET /instances/{id}/documents`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentList {
    pub documents: Vec<crate::engine::Document>,
}

/// `GET /inbox`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InboxList {
    pub items: Vec<crate::inbox::InboxItem>,
}

/// `GET /clock`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClockNow {
    pub now: chrono::DateTime<chrono::Utc>,
    /// A simulated clock (`yimen serve --clock`), moved by `POST /clock/advance`.
    pub simulated: bool,
}

/// A report job as `GET /reports` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportJob {
    pub name: String,
    pub cron: String,
    /// The report it runs.
    pub report: crate::reports::ReportKind,
    /// Its next run; `null` when its schedule has none.
    pub next: Option<chrono::DateTime<chrono::Utc>>,
}

/// `GET /reports`: the jobs and their latest runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportJobs {
    pub jobs: Vec<ReportJob>,
    pub runs: Vec<crate::reports::ReportRun>,
}

/// `GET /reports/{job}/runs`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportRunList {
    pub runs: Vec<crate::reports::ReportRun>,
}

/// `GET /openapi.json`: an OpenAPI 3.1 document (<https://spec.openapis.org/oas/v3.1.0>).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenApiDocument {
    /// `3.1.0`.
    pub openapi: String,
    #[schema(value_type = Object)]
    pub info: Value,
    #[schema(value_type = Object)]
    pub paths: Value,
    #[schema(value_type = Object)]
    pub components: Value,
}

fn millis_to_text(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Unix milliseconds as RFC 3339 in `tz`, the calendar's zone, with its offset
/// (`2026-09-29T09:00:00.000+08:00`): the time people read, as the history gives it.
fn zoned_text(millis: i64, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| {
            t.with_timezone(&tz)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
        })
        .unwrap_or_default()
}

impl TokenInfo {
    /// `r` as listed at `now` (unix millis), which decides its `state`; its times in `tz`.
    pub fn of(r: crate::store::tokens::TokenRecord, now: i64, tz: chrono_tz::Tz) -> TokenInfo {
        let state = match r.validity().lapsed(now) {
            None => "active",
            Some(crate::auth::Lapsed::Expired { .. }) => "expired",
            Some(crate::auth::Lapsed::Revoked { .. }) => "revoked",
        };
        TokenInfo {
            id: r.id,
            name: r.name,
            roles: r.roles,
            org_units: r.org_units,
            created_at: zoned_text(r.created_at, tz),
            revoked_at: r.revoked_at.map(|t| zoned_text(t, tz)),
            expires_at: r.expires_at.map(|t| zoned_text(t, tz)),
            state: state.into(),
        }
    }
}

impl Refusal {
    /// `r` with its time in `tz`.
    pub fn of(r: crate::store::tokens::RefusalRecord, tz: chrono_tz::Tz) -> Refusal {
        Refusal {
            at: zoned_text(r.at, tz),
            token: r.token_name,
            method: r.method,
            path: r.path,
            status: u16::try_from(r.status).unwrap_or(0),
            reason: r.reason,
            address: r.address,
            count: r.hits,
        }
    }
}

/// `POST /session`: sign in.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    pub login: String,
    pub password: String,
}

/// A person's account as shown (never its password).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserInfo {
    pub id: String,
    pub login: String,
    /// The display name (`王芳`).
    pub name: String,
    pub roles: Vec<String>,
    /// Organisation units the user is limited to; empty = all.
    pub org_units: Vec<String>,
    /// The password is a one-time one: the user must set their own before anything else.
    pub must_change_password: bool,
    pub created_at: String,
    pub disabled_at: Option<String>,
    /// Locked after failed sign-ins until this moment.
    pub locked_until: Option<String>,
    /// Managed by the city's identity provider: signs in there, has no password here, and
    /// takes its roles and units from the provider at each sign-in.
    pub external: bool,
}

/// A session begun: the cookie `yimen_session` is set beside it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    pub user: UserInfo,
    /// Send it as `X-CSRF-Token` with every POST, PUT, PATCH and DELETE of this session.
    pub csrf_token: String,
    /// Only `POST /session/password` (and signing out) is allowed until it is changed.
    pub must_change_password: bool,
    /// The session ends then however much it is used.
    pub expires_at: String,
    /// It ends sooner when unused this many seconds.
    pub idle_timeout_seconds: u64,
}

/// `DELETE /session`: the session ended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignedOut {
    pub ended_at: String,
}

/// `POST /session/password`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The password now (the one-time one, at first).
    pub current: String,
    /// The new password: at least 10 characters (`accounts::MIN_PASSWORD_CHARS`).
    pub new: String,
}

/// `POST /users`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    /// Letters, digits, `.`, `_`, `-`, `@`; stored in lower case.
    #[schema(max_length = 64, min_length = 1)]
    pub login: String,
    /// The display name, 1 to 100 characters.
    #[schema(max_length = 100, min_length = 1)]
    pub name: String,
    /// `admin`, or names of roles the processes declare (as a token's).
    pub roles: Vec<String>,
    /// Organisation units the user is limited to; empty = all.
    #[serde(default)]
    pub org_units: Vec<String>,
}

/// `PUT /users/{login}/roles`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolesBody {
    pub roles: Vec<String>,
    #[serde(default)]
    pub org_units: Vec<String>,
}

/// An account with its one-time password, shown only in this answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserPassword {
    pub user: UserInfo,
    /// Give it to the person; they set their own at their first sign-in.
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserInfo>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignInQuery {
    /// Page, from 1 (the newest attempts).
    pub page: Option<u32>,
    /// Attempts per page, 1 to 100 (default 20).
    pub page_size: Option<u32>,
}

/// A sign-in attempt, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignIn {
    pub at: String,
    /// The login given (whether an account has it or not).
    pub login: String,
    /// The client's address, when known.
    pub address: Option<String>,
    /// `ok`, `bad_password`, `locked`, `disabled`, `unknown_login`, `oidc` or `oidc_failed`.
    pub result: String,
}

/// Sign-in attempts, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignInList {
    pub sign_ins: Vec<SignIn>,
    pub page: u32,
    pub page_size: u32,
    /// The next page, when there are more.
    pub next_page: Option<u32>,
}

/// Open tasks of one queue the caller may work.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueCount {
    pub queue: String,
    pub open: i64,
}

/// `GET /me`: who is calling, what they may do and their work.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// `user` or `token`.
    pub kind: String,
    pub id: String,
    /// The user's display name, or the token's name.
    pub name: String,
    /// A user's login.
    pub login: Option<String>,
    pub roles: Vec<String>,
    /// Organisation units the caller is limited to; empty = all.
    pub org_units: Vec<String>,
    /// A role of the caller oversees (reads every case of its units).
    pub oversees: bool,
    /// The tasks the caller has claimed, oldest first.
    #[schema(value_type = Vec<crate::engine::TaskView>)]
    pub tasks: Vec<Value>,
    /// Open tasks per queue the caller may work (of its units).
    pub queues: Vec<QueueCount>,
    /// A session's CSRF token (`X-CSRF-Token` of its state-changing calls), for a page whose
    /// session began by a redirect (`GET /oidc/callback`) rather than by `POST /session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

impl From<crate::store::accounts::UserRecord> for UserInfo {
    fn from(r: crate::store::accounts::UserRecord) -> UserInfo {
        UserInfo {
            id: r.id,
            login: r.login,
            name: r.name,
            roles: r.roles,
            org_units: r.org_units,
            must_change_password: r.must_change_password,
            created_at: millis_to_text(r.created_at),
            disabled_at: r.disabled_at.map(millis_to_text),
            locked_until: r.locked_until.map(millis_to_text),
            external: r.external,
        }
    }
}

impl From<crate::store::accounts::SignInRecord> for SignIn {
    fn from(r: crate::store::accounts::SignInRecord) -> SignIn {
        SignIn {
            at: millis_to_text(r.at),
            login: r.login,
            address: r.address,
            result: r.result,
        }
    }
}

/// `POST /reassignments`: hand the tasks of one person (away) to another of their unit.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignBody {
    /// The login of the person away (an account, `yimen user add`).
    pub from: String,
    /// The login of the person who stands in: an account holding the same role in the same
    /// organisation unit.
    pub to: String,
    /// Why (leave, illness, a move); recorded in the history of every case concerned. At
    /// most 500 characters.
    #[schema(max_length = 500)]
    pub reason: String,
    /// The last day it holds (`2026-12-20`), in the calendar's zone, inclusive; absent: for
    /// good.
    #[serde(default)]
    pub until: Option<String>,
    /// The organisation unit, when `from` belongs to several the caller may act for.
    #[serde(default)]
    pub org_unit: Option<String>,
}

/// A person a reassignment names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReassignedPerson {
    /// Who they are: `user:<id>`.
    pub key: String,
    pub login: String,
    /// The display name (`王芳`).
    pub name: String,
}

/// A reassignment, as made and as it stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReassignmentInfo {
    pub id: String,
    pub org_unit: String,
    /// The role whose tasks are handed over (`window`).
    pub role: String,
    pub from: ReassignedPerson,
    pub to: ReassignedPerson,
    pub reason: String,
    /// The last day it holds (inclusive, calendar zone); `null`: for good.
    pub until: Option<String>,
    pub starts_at: String,
    /// The first instant it no longer holds (end of `until`, or when it was ended early).
    pub ends_at: Option<String>,
    /// It holds now.
    pub active: bool,
    /// Who made it: name and key.
    pub by: String,
    pub by_key: String,
    /// Ended early: when and by whom.
    pub ended_at: Option<String>,
    pub ended_by: Option<String>,
    pub created_at: String,
}

impl ReassignmentInfo {
    /// The row as shown at `now` (unix millis).
    pub fn of(r: crate::store::reassignments::ReassignmentRow, now: i64) -> ReassignmentInfo {
        ReassignmentInfo {
            active: r.holds_at(now),
            id: r.id,
            org_unit: r.org_unit,
            role: r.role,
            from: ReassignedPerson {
                key: r.from_key,
                login: r.from_login,
                name: r.from_name,
            },
            to: ReassignedPerson {
                key: r.to_key,
                login: r.to_login,
                name: r.to_name,
            },
            reason: r.reason,
            until: r.until_day,
            starts_at: millis_to_text(r.starts_at),
            ends_at: r.ends_at.map(millis_to_text),
            by: r.by_name,
            by_key: r.by_key,
            ended_at: r.ended_at.map(millis_to_text),
            ended_by: r.ended_by,
            created_at: millis_to_text(r.created_at),
        }
    }
}

/// `GET /reassignments`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReassignmentList {
    /// Newest first: active and past.
    pub reassignments: Vec<ReassignmentInfo>,
}

//! People's accounts for administrators (`/users`), the record of sign-ins (`/sign-ins`), and
//! `GET /me`: who is calling, with their work.

use super::dto::*;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, ErrorBody};
use crate::accounts;
use crate::auth::{Principal, PrincipalKind, Role};
use crate::store::accounts::{NewUser, UserRecord};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Create a person's account (admin only). The answer holds a one-time password, shown only
/// there: the person signs in with it and must set their own first.
#[utoipa::path(post, path = "/users", tag = "users", operation_id = "create_user",
    request_body = UserBody,
    responses((status = 201, body = UserPassword), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create_user(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<(StatusCode, ApiJson<UserPassword>), ApiError> {
    require_admin(&principal, "create accounts")?;
    let mut problems = Vec::new();
    let login = accounts::normalize_login(&body.login);
    if let Some(why) = accounts::login_problem(&login) {
        problems.push(json!({"field": "login", "message": why}));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > accounts::MAX_NAME_CHARS {
        problems.push(json!({"field": "name", "message": format!(
            "give the person's name, 1 to {} characters", accounts::MAX_NAME_CHARS)}));
    } else if let Some(why) = crate::engine::text_problem(name, accounts::MAX_NAME_CHARS) {
        problems.push(json!({"field": "name", "message": why}));
    }
    let (roles, org_units) = roles_and_units(&body.roles, &body.org_units, &mut problems);
    if !problems.is_empty() {
        return Err(invalid("the account", problems));
    }
    let password = accounts::one_time_password();
    let plain = password.clone();
    let hash = super::session::hashing(&state, move || accounts::hash_password(&plain))
        .await?
        .map_err(ApiError::internal)?;
    let now = state.engine.clock().now();
    let user = state
        .accounts
        .create(
            &NewUser {
                login: &login,
                name,
                roles: &roles,
                org_units: &org_units,
                password_hash: &hash,
            },
            now,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(UserPassword {
            user: user.into(),
            password,
        }),
    ))
}

/// Every account, by login (admin only). Passwords are never shown.
#[utoipa::path(get, path = "/users", tag = "users", operation_id = "list_users",
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list_users(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Result<ApiJson<UserList>, ApiError> {
    require_admin(&principal, "list accounts")?;
    let users = state.accounts.list().await?;
    Ok(ApiJson(UserList {
        users: users.into_iter().map(Into::into).collect(),
    }))
}

/// Disable an account (admin only): it can no longer sign in, and its sessions end at once on
/// every server.
#[utoipa::path(post, path = "/users/{login}/disable", tag = "users", operation_id = "disable_user",
    params(("login" = String, Path, description = "the account's login")),
    responses((status = 200, body = UserInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn disable_user(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(login): ApiPath<String>,
) -> Result<ApiJson<UserInfo>, ApiError> {
    let user = account_for_admin(&state, &principal, &login, "disable accounts").await?;
    let now = state.engine.clock().now();
    let user = state.accounts.disable(&user.login, now).await?;
    user.map(|u| ApiJson(u.into()))
        .ok_or_else(|| no_account(&login))
}

/// Enable a disabled account again (admin only): it may sign in; a lock after failed
/// sign-ins is lifted. Sessions ended by the disabling stay ended.
#[utoipa::path(post, path = "/users/{login}/enable", tag = "users", operation_id = "enable_user",
    params(("login" = String, Path, description = "the account's login")),
    responses((status = 200, body = UserInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn enable_user(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(login): ApiPath<String>,
) -> Result<ApiJson<UserInfo>, ApiError> {
    let user = account_for_admin(&state, &principal, &login, "enable accounts").await?;
    let user = state.accounts.enable(&user.login).await?;
    user.map(|u| ApiJson(u.into()))
        .ok_or_else(|| no_account(&login))
}

/// Give an account a new one-time password (admin only), shown only in this answer: the
/// person must set their own at their next sign-in; a lock after failed sign-ins is lifted
/// and the account's sessions end. 409 `account_external` for an account the identity
/// provider manages.
#[utoipa::path(post, path = "/users/{login}/reset-password", tag = "users", operation_id = "reset_password",
    params(("login" = String, Path, description = "the account's login")),
    responses((status = 200, body = UserPassword), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn reset_password(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(login): ApiPath<String>,
) -> Result<ApiJson<UserPassword>, ApiError> {
    let user = account_for_admin(&state, &principal, &login, "reset passwords").await?;
    not_external(
        &user,
        "its password is kept by the identity provider, not here",
    )?;
    let login = user.login;
    let password = accounts::one_time_password();
    let plain = password.clone();
    let hash = super::session::hashing(&state, move || accounts::hash_password(&plain))
        .await?
        .map_err(ApiError::internal)?;
    let now = state.engine.clock().now();
    let user = state
        .accounts
        .set_password(&login, &hash, true, None, now)
        .await?
        .ok_or_else(|| no_account(&login))?;
    Ok(ApiJson(UserPassword {
        user: user.into(),
        password,
    }))
}

/// Set an account's roles and organisation units (admin only); its sessions carry them from
/// their next call on. 409 `account_external` for an account the identity provider manages
/// (it takes them from the provider).
#[utoipa::path(put, path = "/users/{login}/roles", tag = "users", operation_id = "set_user_roles",
    params(("login" = String, Path, description = "the account's login")),
    request_body = RolesBody,
    responses((status = 200, body = UserInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn set_roles(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(login): ApiPath<String>,
    ApiJson(body): ApiJson<RolesBody>,
) -> Result<ApiJson<UserInfo>, ApiError> {
    let user = account_for_admin(&state, &principal, &login, "change roles").await?;
    not_external(
        &user,
        "its roles and units come from the identity provider at each sign-in; change them there",
    )?;
    let login = user.login;
    let mut problems = Vec::new();
    let (roles, org_units) = roles_and_units(&body.roles, &body.org_units, &mut problems);
    if !problems.is_empty() {
        return Err(invalid("the roles", problems));
    }
    let user = state.accounts.set_roles(&login, &roles, &org_units).await?;
    user.map(|u| ApiJson(u.into()))
        .ok_or_else(|| no_account(&login))
}

/// Sign-in attempts, newest first (admin only): when, the login given, the client's address,
/// and the result.
#[utoipa::path(get, path = "/sign-ins", tag = "users", operation_id = "list_sign_ins",
    params(SignInQuery),
    responses((status = 200, body = SignInList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn sign_ins(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<SignInQuery>,
) -> Result<ApiJson<SignInList>, ApiError> {
    require_admin(&principal, "read the sign-ins")?;
    let (page, page_size) = paging(query.page, query.page_size)?;
    let offset = i64::from(page - 1) * i64::from(page_size);
    // One more than the page, to know whether another follows.
    let mut rows = state
        .accounts
        .sign_ins(i64::from(page_size) + 1, offset)
        .await?;
    let more = rows.len() > page_size as usize;
    rows.truncate(page_size as usize);
    Ok(ApiJson(SignInList {
        sign_ins: rows.into_iter().map(Into::into).collect(),
        page,
        page_size,
        next_page: more.then_some(page + 1),
    }))
}

/// Who I am: a person signed in or a token, with roles and units, the tasks I have claimed,
/// and how many tasks wait in each queue I may work (of my units).
#[utoipa::path(get, path = "/me", tag = "users", operation_id = "me",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn me(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Extension(credential): Extension<super::access::Credential>,
) -> Result<ApiJson<Me>, ApiError> {
    let csrf_token = match &credential {
        super::access::Credential::Session(id) => {
            state.accounts.session(id).await?.map(|s| s.csrf_token)
        }
        _ => None,
    };
    let login = match principal.kind {
        PrincipalKind::User => state.accounts.by_id(&principal.id).await?.map(|u| u.login),
        PrincipalKind::Token => None,
    };
    // Claims record their holder by key (`api::tasks::claim`): not another 王芳's.
    let tasks = state
        .engine
        .claimed_tasks(&crate::actor::Actor::from(&principal), 1000)
        .await?;
    let tasks = tasks
        .iter()
        .filter(|t| principal.works_queue(&t.queue, t.org_unit.as_deref()))
        .map(super::definitions::to_json)
        .collect::<Result<Vec<Value>, _>>()?;
    let units = (!principal.org_units.is_empty()).then_some(principal.org_units.as_slice());
    let queues = state
        .engine
        .open_task_counts(units)
        .await?
        .into_iter()
        .filter(|(queue, _)| principal.holds_queue(queue))
        .map(|(queue, open)| QueueCount { queue, open })
        .collect();
    Ok(ApiJson(Me {
        kind: principal.kind.as_str().to_string(),
        id: principal.id.clone(),
        name: principal.name.clone(),
        login,
        roles: principal.roles.iter().map(Role::to_string).collect(),
        org_units: principal.org_units.clone(),
        oversees: principal.is_overseer(),
        tasks,
        queues,
        csrf_token,
    }))
}

/// Roles read as a token's are, and organisation units without blanks; problems pushed.
fn roles_and_units(
    roles: &[String],
    units: &[String],
    problems: &mut Vec<Value>,
) -> (Vec<String>, Vec<String>) {
    let roles = match Role::parse_list(&roles.join(",")) {
        Ok(roles) => roles.iter().map(Role::to_string).collect(),
        Err(crate::auth::RoleError::NoRole) => {
            problems.push(json!({"field": "roles", "message": "give at least one role"}));
            Vec::new()
        }
        Err(why) => {
            problems.push(json!({"field": "roles", "message": why.to_string()}));
            Vec::new()
        }
    };
    for (i, unit) in units.iter().enumerate() {
        if let Some(why) = crate::engine::text_problem(unit, 128) {
            problems.push(json!({"field": format!("org_units/{i}"), "message": why}));
        }
    }
    let units = units
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    (roles, units)
}

fn invalid(what: &str, problems: Vec<Value>) -> ApiError {
    let each: Vec<String> = problems
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p["field"].as_str().unwrap_or(""),
                p["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    ApiError::unprocessable(
        "invalid_request",
        format!("{what} has problems: {}", each.join("; ")),
        json!({ "problems": problems }),
    )
}

/// The account `login` names, for an administrator's change: 403 for anyone else, 404 when
/// there is none.
async fn account_for_admin(
    state: &ApiState,
    principal: &Principal,
    login: &str,
    what: &str,
) -> Result<UserRecord, ApiError> {
    require_admin(principal, what)?;
    let login = accounts::normalize_login(login);
    state
        .accounts
        .by_login(&login)
        .await?
        .ok_or_else(|| no_account(&login))
}

/// 409 `account_external` for an account the identity provider manages.
fn not_external(user: &UserRecord, why: &str) -> Result<(), ApiError> {
    if user.external {
        return Err(ApiError::conflict(
            "account_external",
            format!(
                "`{}` signs in through the identity provider: {why}",
                user.login
            ),
        ));
    }
    Ok(())
}

fn no_account(login: &str) -> ApiError {
    ApiError::not_found(format!(
        "no account with the login `{login}`; `yimen user list` shows them"
    ))
}

fn require_admin(principal: &Principal, what: &str) -> Result<(), ApiError> {
    if principal.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "only an admin may {what}; {} is not one",
            principal.who()
        )))
    }
}

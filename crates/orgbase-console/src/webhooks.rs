//! Webhook endpoints: an organization's, on its page (`webhooks:manage`), and the platform's, at
//! `/console/webhooks`. The same handlers serve both, the path saying whose ([`Owner`]): the
//! endpoints, one made (its secret shown once), switched off and on, tested and removed; an
//! endpoint's messages, a message's attempts, and a replay. Each is the API's own service call,
//! so the same people may, and each change is audited.
use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use orgbase_api::service::webhooks::{EndpointChange, Scope};
use orgbase_api::service::{self, ServiceError};
use orgbase_api::AppState;
use orgbase_domain::organization::parse_web_url;
use orgbase_domain::webhook::{
    parse_description, parse_event_types, EventType, WebhookAttempt, WebhookEndpoint,
    WebhookMessage,
};
use orgbase_domain::{OrganizationId, Permission, ValidationErrors};
use serde::Deserialize;
use uuid::Uuid;

use crate::organizations::org_id;
use crate::session::{self, Console};
use crate::views::{
    AttemptRow, EndpointFields, EndpointPage, EndpointRow, MessagePage, MessageRow,
    NewEndpointPage, WebhooksPage, WebhooksSection,
};
use crate::{render, render_secret, PageError};

/// Messages an endpoint's page shows, newest first.
const MESSAGES_SHOWN: u32 = 50;
const TIME: &str = "%Y-%m-%d %H:%M:%S UTC";

/// Whose endpoints a path names.
#[derive(Clone, Copy)]
pub(crate) enum Owner {
    Organization(OrganizationId),
    Platform,
}

impl Owner {
    /// The console's address of the owner's endpoints.
    fn base(self) -> String {
        match self {
            Owner::Organization(id) => format!("/console/organizations/{id}/webhooks"),
            Owner::Platform => "/console/webhooks".to_owned(),
        }
    }

    /// Where the endpoints are listed: the organization's page, or the platform's list.
    fn home(self) -> String {
        match self {
            Owner::Organization(id) => format!("/console/organizations/{id}"),
            Owner::Platform => "/console/webhooks".to_owned(),
        }
    }
}

/// The path's parts: the organization (absent for the platform's), the endpoint, the message,
/// the action.
#[derive(Deserialize)]
pub(crate) struct At {
    id: Option<String>,
    endpoint: Option<String>,
    message: Option<String>,
    action: Option<String>,
}

impl At {
    fn owner(&self) -> Result<Owner, PageError> {
        Ok(match &self.id {
            Some(id) => Owner::Organization(org_id(id)?),
            None => Owner::Platform,
        })
    }

    fn endpoint(&self) -> Result<Uuid, PageError> {
        self.endpoint
            .as_deref()
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| ServiceError::NotFound.into())
    }

    fn message(&self) -> &str {
        self.message.as_deref().unwrap_or_default()
    }
}

/// Runs `f` as the owner's manager: `webhooks:manage` on the organization, or the platform.
async fn scoped<T>(
    state: &AppState,
    who: &Console,
    owner: Owner,
    f: impl AsyncFnOnce(&Scope<'_>) -> Result<T, PageError>,
) -> Result<T, PageError> {
    match owner {
        Owner::Organization(id) => {
            let access = service::organizations::load_with(
                state,
                &who.principal,
                id,
                Permission::WebhooksManage,
            )
            .await?;
            f(&Scope::Organization(&access)).await
        }
        Owner::Platform => {
            let admin = who.principal.platform()?;
            f(&Scope::Platform(&admin)).await
        }
    }
}

/// What an endpoint's form sent (a new one's, an edit, an action).
#[derive(Default)]
pub(crate) struct EndpointForm {
    csrf: Option<String>,
    url: String,
    description: String,
    event_types: Vec<String>,
    /// The removal's "I mean it" box.
    confirm: Option<String>,
}

impl EndpointForm {
    /// From the raw body: `eventType` repeats, once for each type chosen.
    fn parse(body: &[u8]) -> Self {
        let mut f = EndpointForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "csrf" => f.csrf = Some(v.into_owned()),
                "url" => f.url = v.trim().to_owned(),
                "description" => f.description = v.into_owned(),
                "eventType" => f.event_types.push(v.into_owned()),
                "confirm" => f.confirm = Some(v.into_owned()),
                _ => {}
            }
        }
        f
    }

    /// The change the API's creation would make of the same fields, checked by the same rules.
    fn change(&self, errors: &mut ValidationErrors) -> EndpointChange {
        let url = if self.url.is_empty() {
            errors.add("url", "required", "give the address events are sent to");
            None
        } else {
            errors.check(parse_web_url("url", &self.url, true))
        };
        EndpointChange {
            url,
            description: errors.check(parse_description("description", self.description.clone())),
            event_types: errors.check(parse_event_types("eventTypes", &self.event_types)),
            disabled: None,
        }
    }
}

/// The endpoints list and an empty new-endpoint form, as the organization page and the
/// platform's page show them.
pub(crate) async fn section(
    state: &AppState,
    scope: &Scope<'_>,
    owner: Owner,
) -> Result<WebhooksSection, ServiceError> {
    let endpoints = service::webhooks::list(state, scope).await?;
    Ok(WebhooksSection {
        base: owner.base(),
        endpoints: endpoints.iter().map(endpoint_row).collect(),
        new: EndpointFields::of(String::new(), String::new(), &[]),
    })
}

/// The organization page's section, for those who manage its webhooks.
pub(crate) async fn org_section(
    state: &AppState,
    access: &service::access::OrgAccess<'_>,
) -> Result<Option<WebhooksSection>, ServiceError> {
    if !access.permissions.has(Permission::WebhooksManage) || access.org.is_deleted() {
        return Ok(None);
    }
    let owner = Owner::Organization(access.org.id);
    section(state, &Scope::Organization(access), owner)
        .await
        .map(Some)
}

fn endpoint_row(e: &WebhookEndpoint) -> EndpointRow {
    EndpointRow {
        id: e.id.to_string(),
        url: e.url.clone(),
        description: e.description.clone(),
        event_types: if e.event_types.is_empty() {
            "every event".to_owned()
        } else {
            e.event_types
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
        disabled: e.disabled,
        state: match (&e.disabled, &e.disabled_reason) {
            (false, _) => "enabled".to_owned(),
            (true, None) => "disabled".to_owned(),
            (true, Some(why)) => format!("disabled: {why}"),
        },
    }
}

fn message_row(m: &WebhookMessage) -> MessageRow {
    MessageRow {
        id: m.id.clone(),
        event_id: m.event_id.clone(),
        event_type: m.event_type.as_str(),
        status: m.status.as_str(),
        attempts: m.attempts,
        created: m.created_at.format(TIME).to_string(),
        next_attempt: m
            .next_attempt_at
            .map(|t| t.format(TIME).to_string())
            .unwrap_or_default(),
    }
}

fn attempt_row(a: &WebhookAttempt) -> AttemptRow {
    AttemptRow {
        at: a.attempted_at.format(TIME).to_string(),
        status_code: a.status_code.map(|s| s.to_string()).unwrap_or_default(),
        duration_ms: a.duration_ms,
        error: a.error.clone().unwrap_or_default(),
        response: a.response.clone().unwrap_or_default(),
    }
}

/// The platform's endpoints.
pub(crate) async fn platform_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
) -> Result<Response, PageError> {
    let (csrf, set) = session::csrf_token(&state, &headers);
    let page = platform_page(&state, &who, &csrf, None).await?;
    Ok(session::with_csrf_cookie(page, set))
}

async fn platform_page(
    state: &AppState,
    who: &Console,
    csrf: &str,
    refused: Option<(&EndpointForm, &ValidationErrors)>,
) -> Result<Response, PageError> {
    let mut hooks = scoped(state, who, Owner::Platform, async |scope| {
        Ok(section(state, scope, Owner::Platform).await?)
    })
    .await?;
    if let Some((form, errors)) = refused {
        hooks.new.refused(form, errors);
    }
    let status = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = WebhooksPage {
        user: &who.label,
        csrf,
        hooks,
    };
    Ok((status, render(&page)).into_response())
}

/// Makes an organization's endpoint; the answer shows its secret, once.
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    let owner = Owner::Organization(org_id(&id)?);
    create_for(state, headers, who, owner, body).await
}

/// Makes one of the platform's endpoints.
pub(crate) async fn platform_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    create_for(state, headers, who, Owner::Platform, body).await
}

async fn create_for(
    state: AppState,
    headers: HeaderMap,
    who: Console,
    owner: Owner,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let form = EndpointForm::parse(&body);
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let mut errors = ValidationErrors::new();
    let mut change = form.change(&mut errors);
    let made = scoped(&state, &who, owner, async |scope| {
        // Who may comes before what was sent.
        service::webhooks::list(&state, scope).await?;
        if !errors.is_empty() {
            return Ok(None);
        }
        let url = change.url.take().expect("checked");
        match service::webhooks::create(&state, scope, url, change).await {
            Ok(e) => Ok(Some(e)),
            Err(ServiceError::Validation(e)) => {
                errors = e;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    let (csrf, _) = session::csrf_token(&state, &headers);
    let Some(endpoint) = made else {
        return match owner {
            Owner::Platform => platform_page(&state, &who, &csrf, Some((&form, &errors))).await,
            Owner::Organization(id) => {
                crate::organizations::organization_page(
                    &state,
                    &who,
                    &csrf,
                    id,
                    crate::organizations::Refused::Webhook(form, errors),
                )
                .await
            }
        };
    };
    let page = NewEndpointPage {
        user: &who.label,
        csrf: &csrf,
        rotated: false,
        home: owner.home(),
        endpoint: format!("{}/{}", owner.base(), endpoint.id),
        url: endpoint.url.clone(),
        secret: endpoint.secret.clone(),
    };
    let answer = render_secret(&page);
    Ok((StatusCode::CREATED, answer).into_response())
}

impl EndpointFields {
    /// The fields showing these values, the types in `chosen` selected.
    fn of(url: String, description: String, chosen: &[EventType]) -> Self {
        Self {
            event_types: EventType::ALL
                .iter()
                .map(|t| (t.as_str(), chosen.contains(t)))
                .collect(),
            url,
            description,
            url_error: None,
            description_error: None,
            event_types_error: None,
        }
    }

    /// What a refused form sent, each field with its messages.
    pub(crate) fn refused(&mut self, form: &EndpointForm, errors: &ValidationErrors) {
        let error_of = |field: &str| {
            let m: Vec<&str> = errors
                .0
                .iter()
                .filter(|e| e.field == field || e.field.starts_with(&format!("{field}[")))
                .map(|e| e.message.as_str())
                .collect();
            (!m.is_empty()).then(|| m.join(" "))
        };
        self.url = form.url.clone();
        self.description = form.description.clone();
        self.url_error = error_of("url");
        self.description_error = error_of("description");
        self.event_types_error = error_of("eventTypes");
        for (t, chosen) in &mut self.event_types {
            *chosen = form.event_types.iter().any(|c| c == t);
        }
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct MessagesQuery {
    /// The last message of the previous page.
    before: Option<String>,
}

/// One endpoint: what it is, its actions, and its latest messages.
pub(crate) async fn endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path(at): Path<At>,
    Query(q): Query<MessagesQuery>,
) -> Result<Response, PageError> {
    let (csrf, set) = session::csrf_token(&state, &headers);
    let page = endpoint_page(&state, &who, &csrf, &at, q.before.as_deref(), Shown::Page).await?;
    Ok(session::with_csrf_cookie(page, set))
}

async fn endpoint_page(
    state: &AppState,
    who: &Console,
    csrf: &str,
    at: &At,
    before: Option<&str>,
    shown: Shown,
) -> Result<Response, PageError> {
    let owner = at.owner()?;
    let id = at.endpoint()?;
    let (endpoint, mut messages) = scoped(state, who, owner, async |scope| {
        let e = service::webhooks::get(state, scope, id).await?;
        let m = service::webhooks::messages(state, scope, id, before, MESSAGES_SHOWN + 1).await?;
        Ok((e, m))
    })
    .await?;
    let older = (messages.len() > MESSAGES_SHOWN as usize).then(|| {
        messages.truncate(MESSAGES_SHOWN as usize);
        let last = &messages.last().expect("a full page").id;
        format!("{}/{id}?before={last}", owner.base())
    });
    // The edit form: the endpoint as it is, or what a refused edit sent.
    let mut edit = EndpointFields::of(
        endpoint.url.clone(),
        endpoint.description.clone(),
        &endpoint.event_types,
    );
    let (status, test_result) = match shown {
        Shown::Page => (StatusCode::OK, None),
        Shown::Tested(said) => (StatusCode::OK, Some(said)),
        Shown::Refused(form, errors) => {
            edit.refused(&form, &errors);
            (StatusCode::UNPROCESSABLE_ENTITY, None)
        }
    };
    let page = EndpointPage {
        user: &who.label,
        csrf,
        home: owner.home(),
        base: format!("{}/{id}", owner.base()),
        endpoint: endpoint_row(&endpoint),
        event_types: EventType::ALL.iter().map(|t| t.as_str()).collect(),
        edit,
        test_result,
        messages: messages.iter().map(message_row).collect(),
        older,
    };
    Ok((status, render(&page)).into_response())
}

/// What the endpoint's page shows besides the endpoint: a test's outcome, or a refused edit.
enum Shown {
    Page,
    Tested(String),
    Refused(EndpointForm, ValidationErrors),
}

/// `enable`, `disable`, `edit` (URL, description, events: the API's update), `rotate` (a new
/// secret, shown once; the old one signs beside it for 24 hours), `test` (an example event sent
/// now; the page says what came back) or `delete` (after a confirmation) an endpoint.
pub(crate) async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path(at): Path<At>,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    let form = EndpointForm::parse(&body);
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let owner = at.owner()?;
    let id = at.endpoint()?;
    let here = format!("{}/{id}", owner.base());
    let done = scoped(&state, &who, owner, async |scope| {
        let disabled = match at.action.as_deref() {
            Some("enable") => false,
            Some("disable") => true,
            Some("delete") => {
                if form.confirm.as_deref() != Some("yes") {
                    return Err(PageError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Not done",
                        "Tick the box to confirm the removal: the endpoint and its deliveries go.",
                    ));
                }
                service::webhooks::delete(&state, scope, id).await?;
                return Ok(Done::GoTo(owner.home()));
            }
            Some("edit") => {
                let mut errors = ValidationErrors::new();
                let change = form.change(&mut errors);
                if !errors.is_empty() {
                    // Who may comes before what was sent.
                    service::webhooks::get(&state, scope, id).await?;
                    return Ok(Done::Refused(errors));
                }
                return match service::webhooks::update(&state, scope, id, change).await {
                    Ok(_) => Ok(Done::GoTo(here.clone())),
                    Err(ServiceError::Validation(errors)) => Ok(Done::Refused(errors)),
                    Err(e) => Err(e.into()),
                };
            }
            Some("rotate") => {
                let e = service::webhooks::rotate_secret(&state, scope, id).await?;
                return Ok(Done::Rotated(e));
            }
            Some("test") => {
                let chosen = form
                    .event_types
                    .first()
                    .map(String::as_str)
                    .unwrap_or_default();
                let t = EventType::parse(chosen).ok_or_else(|| {
                    PageError::new(StatusCode::BAD_REQUEST, "Not valid", "No such event type.")
                })?;
                let limit = service::webhooks::test_limit(state.config.request_timeout);
                let (event_id, sent) =
                    service::webhooks::send_test(&state, scope, id, t, limit).await?;
                let said = match (sent.status, &sent.error) {
                    (Some(s), _) => format!("answered {s}"),
                    (None, Some(e)) => format!("no answer: {e}"),
                    (None, None) => "no answer".to_owned(),
                };
                return Ok(Done::Tested(format!(
                    "Sent {} ({event_id}): {said}, in {} ms.",
                    t.as_str(),
                    sent.duration_ms
                )));
            }
            _ => return Err(ServiceError::NotFound.into()),
        };
        let change = EndpointChange {
            disabled: Some(disabled),
            ..EndpointChange::default()
        };
        service::webhooks::update(&state, scope, id, change).await?;
        Ok(Done::GoTo(here.clone()))
    })
    .await?;
    let (csrf, _) = session::csrf_token(&state, &headers);
    match done {
        Done::GoTo(to) => Ok(Redirect::to(&to).into_response()),
        // A test's outcome, or a refused edit, is shown on the endpoint's page.
        Done::Tested(said) => {
            endpoint_page(&state, &who, &csrf, &at, None, Shown::Tested(said)).await
        }
        Done::Refused(errors) => {
            endpoint_page(&state, &who, &csrf, &at, None, Shown::Refused(form, errors)).await
        }
        Done::Rotated(e) => {
            let page = NewEndpointPage {
                user: &who.label,
                csrf: &csrf,
                rotated: true,
                home: owner.home(),
                endpoint: here,
                url: e.url,
                secret: e.secret,
            };
            Ok(render_secret(&page))
        }
    }
}

/// What an endpoint's action leaves: a page to go to, a test's outcome or a refused edit to
/// show, or a new secret.
enum Done {
    GoTo(String),
    Tested(String),
    Refused(ValidationErrors),
    Rotated(WebhookEndpoint),
}

/// One message: where it stands, and every attempt.
pub(crate) async fn message(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path(at): Path<At>,
) -> Result<Response, PageError> {
    let (csrf, set) = session::csrf_token(&state, &headers);
    let owner = at.owner()?;
    let id = at.endpoint()?;
    let (endpoint, (message, attempts)) = scoped(&state, &who, owner, async |scope| {
        let e = service::webhooks::get(&state, scope, id).await?;
        Ok((
            e,
            service::webhooks::message(&state, scope, id, at.message()).await?,
        ))
    })
    .await?;
    let page = MessagePage {
        user: &who.label,
        csrf: &csrf,
        endpoint_href: format!("{}/{id}", owner.base()),
        endpoint_url: endpoint.url,
        message: message_row(&message),
        attempts: attempts.iter().map(attempt_row).collect(),
    };
    Ok(session::with_csrf_cookie(render(&page), set))
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    csrf: Option<String>,
}

/// Sends a message again, whatever became of it; back to its page.
pub(crate) async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: Console,
    Path(at): Path<At>,
    Form(form): Form<CsrfOnly>,
) -> Result<Redirect, PageError> {
    session::check_csrf(&headers, form.csrf.as_deref())?;
    let owner = at.owner()?;
    let id = at.endpoint()?;
    scoped(&state, &who, owner, async |scope| {
        Ok(service::webhooks::replay(&state, scope, id, at.message()).await?)
    })
    .await?;
    Ok(Redirect::to(&format!(
        "{}/{id}/messages/{}",
        owner.base(),
        at.message()
    )))
}

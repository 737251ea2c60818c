//! The pages, as askama templates (`templates/`), and what each shows. Values are escaped by
//! the templates; nothing here is trusted HTML.
use askama::Template;

#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage<'a> {
    pub title: &'a str,
    pub detail: &'a str,
    pub status: u16,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub(crate) struct SignInPage<'a> {
    pub csrf: &'a str,
    pub email: &'a str,
    /// Why the key was refused, shown next to its field.
    pub key_error: Option<String>,
    /// Why the e-mail and password were refused, shown next to the password.
    pub password_error: Option<String>,
}

/// One row of the organizations list.
pub(crate) struct OrgRow {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub status: &'static str,
    pub org_type: &'static str,
    pub created: String,
}

#[derive(Template)]
#[template(path = "organizations.html")]
pub(crate) struct OrganizationsPage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    pub q: &'a str,
    pub q_error: Option<String>,
    /// Each status to filter by, and whether it is the one chosen.
    pub statuses: Vec<(&'static str, bool)>,
    /// Each type to filter by, and whether it is the one chosen.
    pub types: Vec<(&'static str, bool)>,
    /// The partner whose children are listed, as sent, and why it was refused.
    pub partner: &'a str,
    pub partner_error: Option<String>,
    /// The `key=value` the metadata must hold, as sent, and why it was refused.
    pub metadata: &'a str,
    pub metadata_error: Option<String>,
    pub rows: Vec<OrgRow>,
    /// The platform: links to its own webhook endpoints.
    pub is_platform: bool,
    /// The next page's address.
    pub next: Option<String>,
}

/// What the organization page says about it.
pub(crate) struct OrgDetails {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub org_type: &'static str,
    pub status: &'static str,
    pub suspended: bool,
    pub status_reason: Option<String>,
    pub country: String,
    pub plan: String,
    pub offered_plan: Option<String>,
    /// Its partner's id, for a child.
    pub parent_id: Option<String>,
    pub is_partner: bool,
    pub sms: String,
    pub created: String,
    pub deleted: bool,
}

/// One channel's access check: its answer and its reasons (code, sentence).
pub(crate) struct AccessRow {
    pub channel: &'static str,
    pub allowed: bool,
    pub reasons: Vec<(&'static str, String)>,
}

/// One audit entry: when, what, by whom, through which surface, and each change (field,
/// before, after).
pub(crate) struct AuditRow {
    pub at: String,
    pub action: String,
    pub actor: String,
    pub surface: &'static str,
    pub changes: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "organization.html")]
pub(crate) struct OrganizationPage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    pub org: OrgDetails,
    pub access: Vec<AccessRow>,
    pub may_set_status: bool,
    /// The owner or the platform, of an organization not deleted.
    pub may_delete: bool,
    /// The platform, of a deleted organization.
    pub may_restore: bool,
    pub delete_error: Option<String>,
    /// The suspension's reason as sent, and why it was refused.
    pub reason: &'a str,
    pub status_error: Option<String>,
    /// For those who may read it.
    pub wallet: Option<WalletSection>,
    /// The amount to credit as sent, and why it was refused.
    pub credit_amount: &'a str,
    pub credit_error: Option<String>,
    /// For those who manage invitations.
    pub invitations: Option<InvitationsSection>,
    /// For those who may read the members.
    pub members: Option<MembersSection>,
    /// The address invited as sent, and why it was refused.
    pub invite_email: &'a str,
    pub invite_error: Option<String>,
    /// For those who manage keys.
    pub keys: Option<KeysSection>,
    /// The new key's name as sent, and why it was refused.
    pub key_name: &'a str,
    pub key_error: Option<String>,
    /// Why the ownership transfer was refused.
    pub transfer_error: Option<String>,
    /// For those who manage its webhooks.
    pub webhooks: Option<WebhooksSection>,
    /// For those who may change the plan.
    pub plans: Option<PlanSection>,
    pub plan_error: Option<String>,
    pub audit: Vec<AuditRow>,
}

/// Webhook endpoints, and the form for a new one.
pub(crate) struct WebhooksSection {
    /// The console's address of these endpoints.
    pub base: String,
    pub endpoints: Vec<EndpointRow>,
    pub new: EndpointFields,
}

/// An endpoint form's fields (a new endpoint's, or an edit's): as shown or as sent, with why
/// each was refused.
pub(crate) struct EndpointFields {
    /// Every event type, each with whether the form chose it.
    pub event_types: Vec<(&'static str, bool)>,
    pub url: String,
    pub description: String,
    pub url_error: Option<String>,
    pub description_error: Option<String>,
    pub event_types_error: Option<String>,
}

pub(crate) struct EndpointRow {
    pub id: String,
    pub url: String,
    pub description: String,
    /// The types it receives, or "every event".
    pub event_types: String,
    pub disabled: bool,
    /// Enabled, or disabled and why.
    pub state: String,
}

pub(crate) struct MessageRow {
    pub id: String,
    pub event_id: String,
    pub event_type: &'static str,
    pub status: &'static str,
    pub attempts: u32,
    pub created: String,
    /// When the next attempt is due, for a pending message.
    pub next_attempt: String,
}

pub(crate) struct AttemptRow {
    pub at: String,
    /// Empty when no answer came.
    pub status_code: String,
    pub duration_ms: u32,
    pub error: String,
    /// The first KiB of the answer.
    pub response: String,
}

/// The platform's endpoints.
#[derive(Template)]
#[template(path = "webhooks.html")]
pub(crate) struct WebhooksPage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    pub hooks: WebhooksSection,
}

/// One endpoint, its actions and its latest messages.
#[derive(Template)]
#[template(path = "endpoint.html")]
pub(crate) struct EndpointPage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    /// Where its owner's endpoints are listed.
    pub home: String,
    /// The endpoint's own address in the console.
    pub base: String,
    pub endpoint: EndpointRow,
    pub event_types: Vec<&'static str>,
    /// The edit form: the endpoint's values, or a refused edit's with why.
    pub edit: EndpointFields,
    /// What a test delivery got.
    pub test_result: Option<String>,
    pub messages: Vec<MessageRow>,
    /// The next (older) page of messages.
    pub older: Option<String>,
}

/// One message and its attempts.
#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    pub endpoint_href: String,
    pub endpoint_url: String,
    pub message: MessageRow,
    pub attempts: Vec<AttemptRow>,
}

/// The page that answers a new endpoint: its signing secret, shown once.
#[derive(Template)]
#[template(path = "new_endpoint.html")]
pub(crate) struct NewEndpointPage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    /// A rotation's new secret, not a new endpoint's.
    pub rotated: bool,
    pub home: String,
    /// The endpoint's page.
    pub endpoint: String,
    pub url: String,
    pub secret: String,
}

/// The plans to choose from (id, label, chosen), for the plan and for the offer.
pub(crate) struct PlanSection {
    pub plans: Vec<(String, String, bool)>,
    pub offers: Vec<(String, String, bool)>,
}

/// The organization's active keys, and the roles a new one may have (id, name, chosen first).
pub(crate) struct KeysSection {
    pub keys: Vec<KeyRow>,
    pub roles: Vec<(i64, &'static str, bool)>,
}

pub(crate) struct KeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub kind: &'static str,
    pub roles: String,
    pub created: String,
}

/// The page that answers a new key: its secret, shown once.
#[derive(Template)]
#[template(path = "new_key.html")]
pub(crate) struct NewKeyPage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    pub organization_id: String,
    pub organization: String,
    pub name: String,
    pub secret: String,
}

/// The pending invitations, and the roles the invite form offers (id, name, chosen first).
pub(crate) struct InvitationsSection {
    pub pending: Vec<InvitationRow>,
    pub roles: Vec<(i64, &'static str, bool)>,
}

/// The first members, and how many there are.
pub(crate) struct MembersSection {
    pub total: u64,
    /// The caller may change roles and remove members (the service still decides each).
    pub may_manage: bool,
    /// The caller may make another member the owner.
    pub may_transfer: bool,
    pub members: Vec<MemberRow>,
}

pub(crate) struct MemberRow {
    pub id: i64,
    /// The owner: neither demoted nor removed here (ownership is transferred).
    pub owner: bool,
    /// The roles a change may choose, each with whether the member holds it.
    pub role_options: Vec<(i64, &'static str, bool)>,
    /// The organization's workspaces (id, name), each with whether the member is in it.
    pub workspace_options: Vec<(String, String, bool)>,
    /// The names of the member's workspaces.
    pub workspaces: String,
    pub name: String,
    pub email: String,
    pub roles: String,
}

pub(crate) struct InvitationRow {
    pub id: String,
    pub email: String,
    pub roles: String,
    pub expires: String,
}

/// The wallet's balances (minor units), its latest entries, and the credit form's key.
pub(crate) struct WalletSection {
    pub balance: i64,
    pub sms_points: i64,
    pub currency: String,
    pub may_credit: bool,
    pub credit_key: String,
    pub entries: Vec<LedgerRow>,
}

pub(crate) struct LedgerRow {
    pub at: String,
    pub kind: &'static str,
    pub amount: i64,
    pub balance_after: i64,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "invite.html")]
pub(crate) struct InvitePage<'a> {
    pub csrf: &'a str,
    pub token: &'a str,
    pub organization: String,
    pub inviter: String,
    pub email: String,
    pub has_account: bool,
    pub signed_in_as: Option<String>,
    pub expires: String,
    pub password_error: Option<String>,
    pub confirmation_error: Option<String>,
}

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
    pub rows: Vec<OrgRow>,
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
    pub audit: Vec<AuditRow>,
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
    pub members: Vec<MemberRow>,
}

pub(crate) struct MemberRow {
    pub id: i64,
    /// The owner: neither demoted nor removed here (ownership is transferred).
    pub owner: bool,
    /// The roles a change may choose, each with whether the member holds it.
    pub role_options: Vec<(i64, &'static str, bool)>,
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

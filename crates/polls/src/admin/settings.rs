//! The tenant's settings: branding and the polls rules, and the logo.

use askama::Template;
use axum::extract::Multipart;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry::TenantDb;
use tenantry::http::SettingsUpdate;
use tenantry::web::{LOGO_MAX_BYTES, Logo, same_token};

use super::{AdminError, CheckedForm, Chrome, Done, Site, Staff, done, page};
use crate::domain::rules::Settings;

/// Why a server's settings page is read-only.
const OPERATOR: &str = "This site's settings are changed by the platform's operator.";

/// The form's fields, as text.
#[derive(Deserialize, Default)]
pub(super) struct SettingsForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    primary_color: String,
    #[serde(default)]
    time_zone: String,
    signup_open: Option<String>,
    #[serde(default)]
    max_choices_per_poll: String,
    allow_vote_change: Option<String>,
}

impl SettingsForm {
    fn of(settings: &Settings) -> Self {
        Self {
            display_name: settings.branding.display_name.clone().unwrap_or_default(),
            primary_color: settings.branding.primary_color.to_string(),
            time_zone: settings.branding.time_zone.to_string(),
            signup_open: settings.app.signup_open.then(|| "true".into()),
            max_choices_per_poll: settings
                .app
                .max_choices_per_poll
                .map(|n| n.to_string())
                .unwrap_or_default(),
            allow_vote_change: settings.app.allow_vote_change.then(|| "true".into()),
        }
    }

    /// The change these fields make to `current`: only the keys whose value changed, a
    /// blank one reset to its default, so that a default left alone stays a default.
    fn patch(&self, current: &Settings) -> Result<Value, (String, String)> {
        let (Value::Object(mut wanted), Ok(Value::Object(now))) =
            (self.fields()?, Self::of(current).fields())
        else {
            return Err(("settings".into(), "the form could not be read".into()));
        };
        wanted.retain(|key, value| now.get(key) != Some(value));
        Ok(Value::Object(wanted))
    }

    /// Every key as these fields give it, blank ones as null.
    fn fields(&self) -> Result<Value, (String, String)> {
        let text = |value: &str| match value.trim() {
            "" => Value::Null,
            value => Value::String(value.to_owned()),
        };
        let max = match self.max_choices_per_poll.trim() {
            "" => Value::Null,
            number => number.parse::<u32>().map(Value::from).map_err(|_| {
                (
                    "max_choices_per_poll".to_owned(),
                    "a whole number, or empty for no limit".to_owned(),
                )
            })?,
        };
        Ok(json!({
            "display_name": text(&self.display_name),
            "primary_color": text(&self.primary_color),
            "time_zone": text(&self.time_zone),
            "signup_open": self.signup_open.is_some(),
            "max_choices_per_poll": max,
            "allow_vote_change": self.allow_vote_change.is_some(),
        }))
    }
}

struct FormView {
    display_name: String,
    primary_color: String,
    time_zone: String,
    signup_open: bool,
    max_choices_per_poll: String,
    allow_vote_change: bool,
}

#[derive(Template)]
#[template(path = "admin/settings.html")]
struct SettingsPage {
    chrome: Chrome,
    form: FormView,
    /// Whether this server can change the catalog (a dedicated tenant's own server cannot).
    editable: bool,
    errors: Vec<(String, String)>,
}

fn settings_page(
    chrome: Chrome,
    form: SettingsForm,
    editable: bool,
    (status, errors): (StatusCode, Vec<(String, String)>),
) -> Response {
    let form = FormView {
        display_name: form.display_name,
        primary_color: form.primary_color,
        time_zone: form.time_zone,
        signup_open: form.signup_open.is_some(),
        max_choices_per_poll: form.max_choices_per_poll,
        allow_vote_change: form.allow_vote_change.is_some(),
    };
    page(
        status,
        &SettingsPage {
            chrome,
            form,
            editable,
            errors,
        },
    )
}

/// `GET /admin/settings`.
pub(super) async fn show(
    staff: Staff,
    site: Site,
    update: SettingsUpdate,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let chrome = Chrome::for_staff(&site, &staff, &mut db).await?;
    let form = SettingsForm::of(&site.settings);
    let ok = (StatusCode::OK, Vec::new());
    Ok(settings_page(chrome, form, update.available(), ok))
}

/// `POST /admin/settings`: the settings, checked as the CLI and the platform API check
/// them; every invalid field is shown.
pub(super) async fn save(
    staff: Staff,
    site: Site,
    update: SettingsUpdate,
    mut db: TenantDb,
    CheckedForm(form): CheckedForm<SettingsForm>,
) -> Result<Response, AdminError> {
    if !update.available() {
        return Err(AdminError::Invalid(OPERATOR.into()));
    }
    let errors = match form.patch(&site.settings) {
        Ok(patch) => {
            let saved = done(&site, "/admin/settings", Done::SettingsSaved);
            match update.apply(patch, saved).await {
                Ok(response) => return Ok(response),
                Err(tenantry::Error::InvalidSettings(errors)) => errors.into_iter().collect(),
                Err(error) => return Err(AdminError::Invalid(error.to_string())),
            }
        }
        Err(error) => vec![error],
    };
    let chrome = Chrome::for_staff(&site, &staff, &mut db).await?;
    Ok(settings_page(
        chrome,
        form,
        true,
        (StatusCode::BAD_REQUEST, errors),
    ))
}

/// `POST /admin/settings/logo` (multipart): a new logo, or `remove`. The CSRF token is a
/// field of the form, checked before the file is looked at.
pub(super) async fn logo(
    staff: Staff,
    site: Site,
    mut db: TenantDb,
    mut multipart: Multipart,
) -> Result<Response, AdminError> {
    let malformed = |e: axum::extract::multipart::MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AdminError::TooLarge(format!(
            "A logo may be at most {} KiB. Choose a smaller image, or save it smaller, and \
             upload it again.",
            LOGO_MAX_BYTES / 1024
        )),
        _ => AdminError::Invalid(format!("the upload could not be read: {}", e.body_text())),
    };
    let (mut csrf_ok, mut remove, mut file) = (false, false, None);
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("csrf") => {
                csrf_ok = same_token(&staff.csrf, &field.text().await.map_err(malformed)?)
            }
            Some("remove") => remove = true,
            Some("logo") if csrf_ok => {
                let bytes = field.bytes().await.map_err(malformed)?;
                file = (!bytes.is_empty()).then(|| bytes.to_vec());
            }
            _ => {}
        }
    }
    if !csrf_ok {
        return Err(AdminError::Csrf);
    }
    let what = match (remove, file) {
        (true, _) => {
            Logo::remove(&mut db).await?;
            Done::LogoRemoved
        }
        (false, Some(bytes)) => {
            Logo::parse(bytes)
                .map_err(AdminError::Invalid)?
                .save(&mut db)
                .await?;
            Done::LogoSaved
        }
        (false, None) => return Err(AdminError::Invalid("choose a file to upload".into())),
    };
    Ok(done(&site, "/admin/settings", what))
}

//! Per-tenant settings: the [`Branding`] tenantry gives every tenant, beside the app's own
//! [`AppSettings`], stored together as one flat JSON object in the catalog.
//!
//! Only the keys a tenant has set are stored; reading fills in the defaults. A change is a
//! patch: the keys given replace the stored ones, `null` resets a key to its default, and a
//! key neither side declares is refused. Every key's error is reported, not just the first.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

/// A setting's error, by key.
pub type SettingsErrors = BTreeMap<String, String>;

/// Settings an app declares for its tenants: every field has a default (`#[serde(default)]`
/// on the type), and every field is serialized, `None` as `null`, so that its keys are known.
pub trait AppSettings:
    Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static
{
    /// Checks what serde cannot: ranges, relations between fields.
    fn validate(&self) -> Result<(), SettingsErrors> {
        Ok(())
    }
}

/// The settings of an app that has none of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoAppSettings {}

impl AppSettings for NoAppSettings {}

/// A colour as `#rrggbb`, lowercase: safe to write into CSS as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color([u8; 3]);

impl Color {
    /// A colour from `#rrggbb`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("'{text}' is not a colour of the form #rrggbb");
        let hex = text.strip_prefix('#').ok_or_else(invalid)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| invalid());
        Ok(Self([byte(0)?, byte(2)?, byte(4)?]))
    }

    /// Black and white, the text colours [`Color::text_on`] chooses between.
    pub const BLACK: Color = Color([0, 0, 0]);
    /// White.
    pub const WHITE: Color = Color([255, 255, 255]);

    /// Relative luminance, as WCAG 2 defines it (0 for black, 1 for white).
    pub fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            match c <= 0.040_45 {
                true => c / 12.92,
                false => ((c + 0.055) / 1.055).powf(2.4),
            }
        };
        let [r, g, b] = self.0;
        0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    }

    /// The WCAG 2 contrast ratio of two colours, from 1 to 21.
    pub fn contrast(self, other: Color) -> f64 {
        let (a, b) = (self.luminance(), other.luminance());
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    /// The text colour for this background: black or white, whichever contrasts more. The
    /// better of the two is always at least 4.58:1, above WCAG's 4.5:1 for text.
    pub fn text_on(self) -> Color {
        match self.contrast(Self::BLACK) >= self.contrast(Self::WHITE) {
            true => Self::BLACK,
            false => Self::WHITE,
        }
    }

    /// This colour darkened (toward black) just enough to reach `ratio` against `background`,
    /// for text and links in the brand colour on a light page.
    pub fn readable_on(self, background: Color, ratio: f64) -> Color {
        let [r, g, b] = self.0;
        (0..=100)
            .map(|step| {
                let keep = f64::from(100 - step) / 100.0;
                let dim = |c: u8| (f64::from(c) * keep).round() as u8;
                Color([dim(r), dim(g), dim(b)])
            })
            .find(|c| c.contrast(background) >= ratio)
            .unwrap_or(Self::BLACK)
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "#{r:02x}{g:02x}{b:02x}")
    }
}

impl Serialize for Color {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Color {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What tenantry gives every tenant: how its pages show it, and its local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Branding {
    /// The name pages show; the tenant's catalog name when `None`.
    pub display_name: Option<String>,
    /// The main colour of its pages.
    pub primary_color: Color,
    /// Its time zone: its schedules fire in it.
    pub time_zone: TimeZone,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            display_name: None,
            primary_color: Color([0x2f, 0x5d, 0x8a]),
            time_zone: TimeZone::default(),
        }
    }
}

/// An IANA time zone (`Europe/Oslo`), `UTC` unless set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    /// The zone named `name`.
    pub fn parse(name: &str) -> Result<Self, String> {
        name.parse().map(Self).map_err(|_| {
            format!("'{name}' is not a time zone; use an IANA name such as Europe/Oslo or UTC")
        })
    }

    /// The zone, for chrono.
    pub fn tz(self) -> chrono_tz::Tz {
        self.0
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Serialize for TimeZone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Branding {
    /// The longest display name, in characters.
    pub const NAME_CHARS: usize = 100;

    fn validate(&self) -> Result<(), SettingsErrors> {
        match &self.display_name {
            Some(name) if name.trim().is_empty() || name.chars().count() > Self::NAME_CHARS => {
                Err(BTreeMap::from([(
                    "display_name".to_owned(),
                    format!("a display name has 1 to {} characters", Self::NAME_CHARS),
                )]))
            }
            Some(name) => check_display_text(name)
                .map_err(|message| BTreeMap::from([("display_name".to_owned(), message)])),
            None => Ok(()),
        }
    }

    /// The stylesheet that carries the branding to pages: CSS variables only, built from
    /// validated values.
    /// `--primary` is the colour itself, for backgrounds; `--on-primary` the text on it
    /// (black or white, whichever reads better); `--primary-text` the colour darkened until
    /// it reads on a white page (WCAG's 4.5:1), for links and headings.
    pub fn css(&self) -> String {
        let primary = self.primary_color;
        format!(
            ":root {{ --primary: {primary}; --on-primary: {}; --primary-text: {}; }}\n",
            primary.text_on(),
            primary.readable_on(Color::WHITE, 4.5)
        )
    }
}

/// A tenant's settings as its handlers read them: the branding and the app's own.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSettings<A> {
    /// The branding every app has.
    pub branding: Branding,
    /// The app's own settings.
    pub app: A,
}

impl<A: AppSettings> TenantSettings<A> {
    /// The settings `stored` describes, defaults filled in. Stored settings were validated
    /// when set; a key that no longer parses (the app changed) falls back to its default.
    pub fn read(stored: &Value) -> Self {
        let Some(stored) = stored.as_object() else {
            return Self::defaults();
        };
        match (from_map(stored), from_map(stored)) {
            (Ok(branding), Ok(app)) => Self { branding, app },
            _ => {
                let mut valid = Map::new();
                for (key, value) in stored {
                    let one = Map::from_iter([(key.clone(), value.clone())]);
                    if from_map::<Branding>(&one).is_ok() && from_map::<A>(&one).is_ok() {
                        valid.insert(key.clone(), value.clone());
                    }
                }
                Self {
                    branding: from_map(&valid).unwrap_or_default(),
                    app: from_map(&valid).unwrap_or_default(),
                }
            }
        }
    }

    fn defaults() -> Self {
        Self {
            branding: Branding::default(),
            app: A::default(),
        }
    }
}

/// A tenant's settings parsed as the app's type, kept with the cached catalog row so that a
/// request does not parse them again.
#[derive(Clone, Default)]
pub(crate) struct ParsedSettings(Arc<OnceLock<Arc<dyn Any + Send + Sync>>>);

impl fmt::Debug for ParsedSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ParsedSettings")
    }
}

impl ParsedSettings {
    /// The settings `stored` holds, as `A`: parsed on first use.
    pub(crate) fn get<A: AppSettings>(&self, stored: &Value) -> TenantSettings<A> {
        let parsed = self
            .0
            .get_or_init(|| Arc::new(TenantSettings::<A>::read(stored)));
        match parsed.downcast_ref::<TenantSettings<A>>() {
            Some(settings) => settings.clone(),
            None => TenantSettings::read(stored),
        }
    }
}

fn from_map<T: DeserializeOwned>(map: &Map<String, Value>) -> Result<T, serde_json::Error> {
    serde_json::from_value(Value::Object(map.clone()))
}

/// The app's settings type, erased, as tenancy keeps it to validate changes.
#[derive(Clone)]
pub struct SettingsSchema {
    defaults: Map<String, Value>,
    validate: fn(&Map<String, Value>) -> SettingsErrors,
}

impl Default for SettingsSchema {
    fn default() -> Self {
        Self::of::<NoAppSettings>()
    }
}

impl fmt::Debug for SettingsSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettingsSchema")
            .field("keys", &self.defaults.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SettingsSchema {
    /// The schema of branding plus `A`.
    ///
    /// # Panics
    /// If `A` does not serialize as an object with a key per field, or names a branding key.
    pub fn of<A: AppSettings>() -> Self {
        let object = |value: Value| match value {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => panic!("settings serialize as an object, not {other}"),
        };
        let mut defaults = object(serde_json::to_value(Branding::default()).expect("branding"));
        let app = object(serde_json::to_value(A::default()).expect("the app's settings"));
        for (key, value) in app {
            assert!(
                !defaults.contains_key(&key),
                "the app's setting '{key}' is a branding setting"
            );
            defaults.insert(key, value);
        }
        Self {
            defaults,
            validate: validate::<A>,
        }
    }

    /// Every key with its default.
    pub fn defaults(&self) -> &Map<String, Value> {
        &self.defaults
    }

    /// `stored` with `patch` applied (a `null` removes the key), if every key is known and
    /// every value valid; otherwise every key's error.
    pub fn apply(&self, stored: &Value, patch: &Value) -> Result<Value, Error> {
        let Some(patch) = patch.as_object() else {
            return Err(Error::Invalid {
                field: "settings",
                message: "settings are a JSON object".into(),
            });
        };
        let mut merged = stored.as_object().cloned().unwrap_or_default();
        let mut errors = SettingsErrors::new();
        for (key, value) in patch {
            if !self.defaults.contains_key(key) {
                errors.insert(key.clone(), "unknown setting".into());
            } else if value.is_null() {
                merged.remove(key);
            } else {
                merged.insert(key.clone(), value.clone());
            }
        }
        merged.retain(|key, _| self.defaults.contains_key(key));
        errors.extend((self.validate)(&merged));
        match errors.is_empty() {
            true => Ok(Value::Object(merged)),
            false => Err(Error::InvalidSettings(errors)),
        }
    }

    /// Every key's effective value: the stored one, or the default.
    pub fn effective(&self, stored: &Value) -> Map<String, Value> {
        let mut all = self.defaults.clone();
        if let Some(stored) = stored.as_object() {
            for (key, value) in stored {
                if all.contains_key(key) {
                    all.insert(key.clone(), value.clone());
                }
            }
        }
        all
    }
}

/// Each key's error: each value alone (its type), then the rules over the values that
/// parsed, so that every invalid key is reported at once.
fn validate<A: AppSettings>(merged: &Map<String, Value>) -> SettingsErrors {
    let mut errors = SettingsErrors::new();
    let mut valid = Map::new();
    for (key, value) in merged {
        let one = Map::from_iter([(key.clone(), value.clone())]);
        let failed = from_map::<Branding>(&one)
            .err()
            .or_else(|| from_map::<A>(&one).err());
        match failed {
            Some(error) => {
                errors.insert(key.clone(), serde_message(&error));
            }
            None => {
                valid.insert(key.clone(), value.clone());
            }
        }
    }
    let (branding, app) = match (from_map::<Branding>(&valid), from_map::<A>(&valid)) {
        (Ok(branding), Ok(app)) => (branding, app),
        (Err(error), _) | (_, Err(error)) => {
            errors.insert("settings".to_owned(), serde_message(&error));
            return errors;
        }
    };
    for result in [branding.validate(), app.validate()] {
        for (key, message) in result.err().unwrap_or_default() {
            errors.entry(key).or_insert(message);
        }
    }
    errors
}

/// serde's message without its position, which means nothing to the user.
fn serde_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.find(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_brand_colour_gets_text_that_reads_on_it_and_a_shade_that_reads_on_white() {
        assert_eq!(Color::parse("#ffeb3b").unwrap().text_on(), Color::BLACK);
        assert_eq!(Color::parse("#2f5d8a").unwrap().text_on(), Color::WHITE);
        assert!((Color::BLACK.contrast(Color::WHITE) - 21.0).abs() < 1e-9);
        let mut worst = f64::MAX;
        for r in (0..=255).step_by(15) {
            for g in (0..=255).step_by(15) {
                for b in (0..=255).step_by(15) {
                    let colour = Color([r as u8, g as u8, b as u8]);
                    worst = worst.min(colour.contrast(colour.text_on()));
                    let shade = colour.readable_on(Color::WHITE, 4.5);
                    assert!(shade.contrast(Color::WHITE) >= 4.5, "{colour} -> {shade}");
                }
            }
        }
        assert!(worst >= 4.5, "{worst}");
    }
    use serde_json::json;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    struct Rules {
        open: bool,
        limit: Option<u32>,
    }

    impl Default for Rules {
        fn default() -> Self {
            Self {
                open: true,
                limit: None,
            }
        }
    }

    impl AppSettings for Rules {
        fn validate(&self) -> Result<(), SettingsErrors> {
            match self.limit {
                Some(0) => Err(BTreeMap::from([("limit".into(), "at least 1".into())])),
                _ => Ok(()),
            }
        }
    }

    #[test]
    fn colours() {
        assert_eq!(Color::parse("#A0b1C2").unwrap().to_string(), "#a0b1c2");
        for bad in [
            "a0b1c2",
            "#a0b1c",
            "#a0b1c2d",
            "#gg0000",
            "red",
            "#ff0000;}",
            "",
        ] {
            assert!(Color::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patches_merge_reset_and_report_every_key() {
        let schema = SettingsSchema::of::<Rules>();
        let stored = schema
            .apply(
                &json!({}),
                &json!({ "open": false, "primary_color": "#FF0000" }),
            )
            .unwrap();
        assert_eq!(stored, json!({ "open": false, "primary_color": "#FF0000" }));
        let read = TenantSettings::<Rules>::read(&stored);
        assert_eq!(read.branding.primary_color.to_string(), "#ff0000");
        assert!(!read.app.open);
        let reset = schema.apply(&stored, &json!({ "open": null })).unwrap();
        assert_eq!(reset, json!({ "primary_color": "#FF0000" }));
        let Err(Error::InvalidSettings(errors)) = schema.apply(
            &stored,
            &json!({ "open": "yes", "primary_color": "blue", "nope": 1, "limit": 0 }),
        ) else {
            panic!("invalid settings were accepted");
        };
        assert_eq!(
            errors.keys().collect::<Vec<_>>(),
            ["limit", "nope", "open", "primary_color"],
            "unknown keys, invalid values and broken rules are all reported"
        );
        let Err(Error::InvalidSettings(errors)) = schema.apply(
            &stored,
            &json!({ "open": "yes", "primary_color": "blue", "limit": -1 }),
        ) else {
            panic!("invalid settings were accepted");
        };
        assert_eq!(
            errors.keys().collect::<Vec<_>>(),
            ["limit", "open", "primary_color"]
        );
        let Err(Error::InvalidSettings(errors)) =
            schema.apply(&stored, &json!({ "open": "yes", "limit": 0 }))
        else {
            panic!("invalid settings were accepted");
        };
        assert_eq!(
            errors["limit"], "at least 1",
            "rules run beside type errors"
        );
        let Err(Error::InvalidSettings(errors)) = schema.apply(&stored, &json!({ "limit": 0 }))
        else {
            panic!("a rule was not checked");
        };
        assert_eq!(errors["limit"], "at least 1");
        assert!(schema.apply(&stored, &json!([])).is_err());
    }

    #[test]
    fn unreadable_stored_keys_fall_back_to_defaults() {
        let read = TenantSettings::<Rules>::read(&json!({ "open": "no", "limit": 3 }));
        assert_eq!(
            read.app,
            Rules {
                open: true,
                limit: Some(3)
            }
        );
    }

    #[test]
    #[should_panic(expected = "branding setting")]
    fn app_keys_may_not_shadow_branding() {
        #[derive(Clone, Default, Serialize, Deserialize)]
        struct Clash {
            primary_color: String,
        }
        impl AppSettings for Clash {}
        SettingsSchema::of::<Clash>();
    }
}

/// Whether `text` is fit to show as a name on pages and terminals: no control characters
/// (which a terminal would act on) and no bidirectional overrides (which reorder what is
/// shown around them); the message says which was found.
pub(crate) fn check_display_text(text: &str) -> Result<(), String> {
    let bidi = |c: char| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    match text.chars().find(|&c| c.is_control() || bidi(c)) {
        Some(c) => Err(format!(
            "a name may not hold control or text-direction characters (found U+{:04X})",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod display_text_tests {
    use super::check_display_text;

    #[test]
    fn control_and_bidi_characters_are_refused() {
        assert!(check_display_text("Loki's Hall — Ø").is_ok());
        for bad in [
            "a\u{1b}[2Jb",
            "tab\there",
            "new\nline",
            "x\u{202E}gnp.exe",
            "\u{2066}y",
        ] {
            assert!(check_display_text(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_display_text("a\u{7}").unwrap_err(),
            "a name may not hold control or text-direction characters (found U+0007)"
        );
    }
}

//! The tenant's logo (`branding_files`): PNG, JPEG or WebP, told from its bytes.

use crate::db::Db;

/// The largest logo accepted.
pub const LOGO_MAX_BYTES: usize = 256 * 1024;

/// The MIME type of `data` if it is a PNG, JPEG or WebP image, told from its first bytes
/// (never from a name or a header); `None` for anything else, SVG above all, which can
/// carry script.
pub fn image_type(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// A logo: its bytes and the content type they were found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logo {
    /// Its MIME type, from its bytes.
    pub content_type: &'static str,
    /// The image.
    pub data: Vec<u8>,
}

impl Logo {
    /// `data` as a logo, if it is a PNG, JPEG or WebP image no larger than
    /// [`LOGO_MAX_BYTES`]. The type comes from the bytes, never from a name or a header;
    /// anything else (SVG above all, which can carry script) is refused.
    pub fn parse(data: Vec<u8>) -> Result<Self, String> {
        if data.is_empty() {
            return Err("the file is empty".into());
        }
        if data.len() > LOGO_MAX_BYTES {
            return Err(format!("a logo is at most {} KiB", LOGO_MAX_BYTES / 1024));
        }
        let content_type =
            image_type(&data).ok_or_else(|| "a logo is a PNG, JPEG or WebP image".to_owned())?;
        Ok(Self { content_type, data })
    }

    /// Stores the tenant's logo, replacing any.
    pub async fn save(&self, db: &mut Db) -> Result<(), sqlx::Error> {
        db.query("DELETE FROM branding_files WHERE name = 'logo'")
            .execute()
            .await?;
        db.query("INSERT INTO branding_files (name, content_type, data) VALUES ('logo', $1, $2)")
            .bind(self.content_type)
            .bind(&self.data)
            .execute()
            .await?;
        Ok(())
    }

    /// The tenant's logo, if it has one; its type told from its bytes again.
    pub async fn load(db: &mut Db) -> Result<Option<Self>, sqlx::Error> {
        let data: Option<Vec<u8>> = db
            .query("SELECT data FROM branding_files WHERE name = 'logo'")
            .fetch_optional_scalar()
            .await?;
        Ok(data.and_then(|data| Self::parse(data).ok()))
    }

    /// Whether the tenant has a logo, without reading it. `count(*)` is a 64-bit integer on
    /// both engines (a bare `SELECT 1` is `int4` on PostgreSQL but `i64` on SQLite).
    pub async fn exists(db: &mut Db) -> Result<bool, sqlx::Error> {
        let count: i64 = db
            .query("SELECT count(*) FROM branding_files WHERE name = 'logo'")
            .fetch_scalar()
            .await?;
        Ok(count > 0)
    }

    /// Removes the tenant's logo.
    pub async fn remove(db: &mut Db) -> Result<(), sqlx::Error> {
        db.query("DELETE FROM branding_files WHERE name = 'logo'")
            .execute()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        let png = b"\x89PNG\r\n\x1a\n....".to_vec();
        assert_eq!(Logo::parse(png).unwrap().content_type, "image/png");
        assert_eq!(
            Logo::parse(b"\xff\xd8\xff\xe0..".to_vec())
                .unwrap()
                .content_type,
            "image/jpeg"
        );
        assert_eq!(
            Logo::parse(b"RIFF\0\0\0\0WEBPVP8 ".to_vec())
                .unwrap()
                .content_type,
            "image/webp"
        );
        let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
        assert!(Logo::parse(svg.to_vec()).is_err());
        assert!(Logo::parse(Vec::new()).is_err());
        let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
        big.resize(LOGO_MAX_BYTES + 1, 0);
        assert!(Logo::parse(big).is_err());
    }
}

//! What a Rust type must be to travel through a [`Db`](crate::Db): the bounds of every
//! engine this build has. An engine left out by its cargo feature asks nothing.

#[cfg(feature = "postgres")]
mod postgres {
    use sqlx::postgres::{PgRow, Postgres};
    use sqlx::{Decode, Encode, FromRow, Type};

    /// A row PostgreSQL can build.
    pub trait PgRecord: for<'r> FromRow<'r, PgRow> {}
    impl<T: for<'r> FromRow<'r, PgRow>> PgRecord for T {}

    /// A column PostgreSQL can decode.
    pub trait PgValue: for<'r> Decode<'r, Postgres> + Type<Postgres> {}
    impl<T: for<'r> Decode<'r, Postgres> + Type<Postgres>> PgValue for T {}

    /// A value PostgreSQL can bind.
    pub trait PgBind<'t>: Encode<'t, Postgres> + Type<Postgres> {}
    impl<'t, T: Encode<'t, Postgres> + Type<Postgres>> PgBind<'t> for T {}
}

#[cfg(not(feature = "postgres"))]
mod postgres {
    /// Any type: this build has no PostgreSQL.
    pub trait PgRecord {}
    impl<T> PgRecord for T {}

    /// Any type: this build has no PostgreSQL.
    pub trait PgValue {}
    impl<T> PgValue for T {}

    /// Any type: this build has no PostgreSQL.
    pub trait PgBind<'t> {}
    impl<T> PgBind<'_> for T {}
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use sqlx::sqlite::{Sqlite, SqliteRow};
    use sqlx::{Decode, Encode, FromRow, Type};

    /// A row SQLite can build.
    pub trait SqliteRecord: for<'r> FromRow<'r, SqliteRow> {}
    impl<T: for<'r> FromRow<'r, SqliteRow>> SqliteRecord for T {}

    /// A column SQLite can decode.
    pub trait SqliteValue: for<'r> Decode<'r, Sqlite> + Type<Sqlite> {}
    impl<T: for<'r> Decode<'r, Sqlite> + Type<Sqlite>> SqliteValue for T {}

    /// A value SQLite can bind.
    pub trait SqliteBind<'t>: Encode<'t, Sqlite> + Type<Sqlite> {}
    impl<'t, T: Encode<'t, Sqlite> + Type<Sqlite>> SqliteBind<'t> for T {}
}

#[cfg(not(feature = "sqlite"))]
mod sqlite {
    /// Any type: this build has no SQLite.
    pub trait SqliteRecord {}
    impl<T> SqliteRecord for T {}

    /// Any type: this build has no SQLite.
    pub trait SqliteValue {}
    impl<T> SqliteValue for T {}

    /// Any type: this build has no SQLite.
    pub trait SqliteBind<'t> {}
    impl<T> SqliteBind<'_> for T {}
}

pub use postgres::{PgBind, PgRecord, PgValue};
pub use sqlite::{SqliteBind, SqliteRecord, SqliteValue};

/// A row type every engine can build with `sqlx::FromRow` (derive it).
pub trait Record: PgRecord + SqliteRecord + Send + Unpin {}
impl<T: PgRecord + SqliteRecord + Send + Unpin> Record for T {}

/// A column type every engine can decode.
pub trait Value: PgValue + SqliteValue + Send + Unpin {}
impl<T: PgValue + SqliteValue + Send + Unpin> Value for T {}

/// A value every engine can bind to a `$N` placeholder.
pub trait Bind<'t>: PgBind<'t> + SqliteBind<'t> {}
impl<'t, T: PgBind<'t> + SqliteBind<'t>> Bind<'t> for T {}

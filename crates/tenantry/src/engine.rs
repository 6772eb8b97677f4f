//! What a Rust type must be to travel through a [`Db`](crate::Db): the bounds of every
//! engine this build has. An engine left out by its cargo feature asks nothing.

/// An engine's three bounds, as `$record`, `$value` and `$bind` in module `$module`: its
/// own when its `$feature` is built, none when it is left out.
macro_rules! engine_bounds {
    ($feature:literal, $module:ident, $engine:literal, $db:ty, $row:ty,
     $record:ident, $value:ident, $bind:ident) => {
        #[cfg(feature = $feature)]
        mod $module {
            use sqlx::{Decode, Encode, FromRow, Type};

            #[doc = concat!("A row ", $engine, " can build.")]
            pub trait $record: for<'r> FromRow<'r, $row> {}
            impl<T: for<'r> FromRow<'r, $row>> $record for T {}

            #[doc = concat!("A column ", $engine, " can decode.")]
            pub trait $value: for<'r> Decode<'r, $db> + Type<$db> {}
            impl<T: for<'r> Decode<'r, $db> + Type<$db>> $value for T {}

            #[doc = concat!("A value ", $engine, " can bind.")]
            pub trait $bind<'t>: Encode<'t, $db> + Type<$db> {}
            impl<'t, T: Encode<'t, $db> + Type<$db>> $bind<'t> for T {}
        }

        /// Any type, for each bound: this build has no such engine.
        #[cfg(not(feature = $feature))]
        #[allow(missing_docs)]
        mod $module {
            pub trait $record {}
            pub trait $value {}
            pub trait $bind<'t> {}
            impl<T> $record for T {}
            impl<T> $value for T {}
            impl<T> $bind<'_> for T {}
        }

        pub use $module::{$bind, $record, $value};
    };
}

engine_bounds! { "postgres", postgres, "PostgreSQL", sqlx::postgres::Postgres,
sqlx::postgres::PgRow, PgRecord, PgValue, PgBind }
engine_bounds! { "sqlite", sqlite, "SQLite", sqlx::sqlite::Sqlite, sqlx::sqlite::SqliteRow,
SqliteRecord, SqliteValue, SqliteBind }

/// A row type every engine can build with `sqlx::FromRow` (derive it).
pub trait Record: PgRecord + SqliteRecord + Send + Unpin {}
impl<T: PgRecord + SqliteRecord + Send + Unpin> Record for T {}

/// A column type every engine can decode.
pub trait Value: PgValue + SqliteValue + Send + Unpin {}
impl<T: PgValue + SqliteValue + Send + Unpin> Value for T {}

/// A value every engine can bind to a `$N` placeholder.
pub trait Bind<'t>: PgBind<'t> + SqliteBind<'t> {}
impl<'t, T: PgBind<'t> + SqliteBind<'t>> Bind<'t> for T {}

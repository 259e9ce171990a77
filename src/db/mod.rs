//! The only code that speaks SQL: the pool, migrations, one module per table family, and
//! filters compiled to SQL.

pub mod filter_sql;

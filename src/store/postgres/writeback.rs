//! Write-back (PostgreSQL).

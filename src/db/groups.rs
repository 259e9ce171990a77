//! Directory groups and their memberships (one row per membership).

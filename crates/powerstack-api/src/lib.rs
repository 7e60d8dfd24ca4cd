//! Wire formats (stub).

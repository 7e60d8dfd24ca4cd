//! The site's job listing query as people type it (`powerstack jobs`, Python's `Site.jobs`).

use crate::site::SiteJobsQueryV1;

impl SiteJobsQueryV1 {
    /// The query of `user`, times as people type them (`7d`, `2026-11-21`, `@SECONDS`: read by
    /// [`powerstack_model::civil::parse_time`] against `now_unix_us`) and `limit`, checked before
    /// anything is asked: `since` not after `until`, `limit` at least 1, an empty user none.
    /// `names` are how the caller calls since, until and limit in messages (`--since`).
    pub fn from_text(
        user: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
        limit: Option<usize>,
        now_unix_us: u64,
        names: [&str; 3],
    ) -> Result<SiteJobsQueryV1, String> {
        let when = |name: &str, text: Option<&str>| {
            text.map(|t| {
                powerstack_model::civil::parse_time(t, now_unix_us)
                    .map_err(|e| format!("{name}: {e}"))
            })
            .transpose()
        };
        let since_us = when(names[0], since)?;
        let until_us = when(names[1], until)?;
        if let (Some(s), Some(u)) = (since_us, until_us)
            && s > u
        {
            return Err(format!("{} is after {}: nothing can match", names[0], names[1]));
        }
        if limit == Some(0) {
            return Err(format!("{} 0: ask for at least one job", names[2]));
        }
        let user = user.filter(|u| !u.is_empty()).map(str::to_string);
        Ok(SiteJobsQueryV1 { user, since: since_us, until: until_us, limit })
    }
}

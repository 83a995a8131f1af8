//! [`JobsQuery`]: filtered listing of jobs.

use std::time::SystemTime;

use crate::job::{Job, JobState};

use super::{Error, Runtime};

/// A query over jobs: from history when enabled, else from memory. Newest
/// first.
#[derive(Debug, Clone)]
pub struct JobsQuery {
    pub(crate) tag: Option<String>,
    pub(crate) state: Option<JobState>,
    pub(crate) created_after: Option<SystemTime>,
    pub(crate) created_before: Option<SystemTime>,
    pub(crate) limit: usize,
}

impl Default for JobsQuery {
    fn default() -> Self {
        JobsQuery {
            tag: None,
            state: None,
            created_after: None,
            created_before: None,
            limit: 100,
        }
    }
}

impl JobsQuery {
    /// Only jobs with this tag.
    pub fn with_tag(mut self, t: impl Into<String>) -> Self {
        self.tag = Some(t.into());
        self
    }

    /// Only jobs in this state.
    pub fn with_state(mut self, state: JobState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only jobs created strictly after `at`.
    pub fn created_after(mut self, at: SystemTime) -> Self {
        self.created_after = Some(at);
        self
    }

    /// Only jobs created strictly before `at`.
    pub fn created_before(mut self, at: SystemTime) -> Self {
        self.created_before = Some(at);
        self
    }

    /// At most `n` jobs (default 100).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }

    /// `true` if `job` passes the filters.
    pub fn matches(&self, job: &Job) -> bool {
        self.tag
            .as_ref()
            .is_none_or(|t| job.command.tags.contains(t))
            && self.state.is_none_or(|s| job.state == s)
            && self.created_after.is_none_or(|a| job.created_at > a)
            && self.created_before.is_none_or(|b| job.created_at < b)
    }

    /// Run the query.
    pub fn run(&self, rt: &Runtime) -> Result<Vec<Job>, Error> {
        rt.run_query(self)
    }
}

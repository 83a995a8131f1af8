//! [`JobsQuery`]: filtered listing of jobs.

use std::time::SystemTime;

use crate::job::{Job, JobState};
use crate::store::JobsFilter;

use super::{Error, Runtime};

/// A query over jobs: from history when enabled, else from memory. Newest
/// first. The filters are a [`JobsFilter`] (what
/// [`Store::list_jobs`](crate::store::Store::list_jobs) takes) plus a limit.
#[derive(Debug, Clone)]
pub struct JobsQuery {
    pub(crate) filter: JobsFilter,
    pub(crate) limit: usize,
}

impl Default for JobsQuery {
    fn default() -> Self {
        JobsQuery {
            filter: JobsFilter::default(),
            limit: 100,
        }
    }
}

impl JobsQuery {
    /// Only jobs with this tag.
    pub fn with_tag(mut self, t: impl Into<String>) -> Self {
        self.filter.tag = Some(t.into());
        self
    }

    /// Only jobs in this state.
    pub fn with_state(mut self, state: JobState) -> Self {
        self.filter.state = Some(state);
        self
    }

    /// Only jobs created strictly after `at`.
    pub fn created_after(mut self, at: SystemTime) -> Self {
        self.filter.created_after = Some(at);
        self
    }

    /// Only jobs created strictly before `at`.
    pub fn created_before(mut self, at: SystemTime) -> Self {
        self.filter.created_before = Some(at);
        self
    }

    /// At most `n` jobs (default 100).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }

    /// `true` if `job` passes the filters.
    pub fn matches(&self, job: &Job) -> bool {
        self.filter.matches(job)
    }

    /// Run the query.
    pub fn run(&self, rt: &Runtime) -> Result<Vec<Job>, Error> {
        rt.run_query(self)
    }
}

//! Where the fleet keeps things in Redis: every key under one prefix (default `sv`).

/// The consumer group every node reads the job stream in.
pub const GROUP: &str = "workers";

/// The fleet's key names under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new("sv")
    }
}

impl Keys {
    /// Keys under `prefix` (`<prefix>:jobs`, `<prefix>:job:<id>`, ...).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The job stream (consumer group [`GROUP`]): one entry per delivery of a job.
    pub fn jobs(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    /// A job's record (a hash): config, kind, state, node, attempts, errors, report.
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{id}", self.prefix)
    }

    /// Every job id, scored by submission time (for `list`).
    pub fn all(&self) -> String {
        format!("{}:jobs:all", self.prefix)
    }

    /// The dead-letter stream: jobs that failed on too many attempts, with their errors.
    pub fn dead(&self) -> String {
        format!("{}:dead", self.prefix)
    }

    /// The node names that ever served, for the fleet metrics.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// One node's published figures (a hash, refreshed every second; expires when it dies).
    pub fn node(&self, name: &str) -> String {
        format!("{}:node:{name}", self.prefix)
    }
}

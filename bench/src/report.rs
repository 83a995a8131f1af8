//! What a child process prints: one `key=value` per line, prefixed `@ `.

use std::fmt::Display;

#[derive(Debug, Default)]
pub struct Report {
    pairs: Vec<(String, String)>,
}

impl Report {
    pub fn put(&mut self, key: &str, value: impl Display) -> &mut Self {
        self.pairs.push((key.to_string(), value.to_string()));
        self
    }

    pub fn print(&self) {
        for (k, v) in &self.pairs {
            println!("@ {k}={v}");
        }
    }
}

/// Parses a child's stdout back into pairs.
pub fn parse(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("@ "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

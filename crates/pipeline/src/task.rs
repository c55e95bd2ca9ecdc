//! What a temporal head learns: the task a model folder records and the data is shaped for.

use serde::{Deserialize, Serialize};

/// What a temporal head learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// The clip's class, read at its last step.
    Classify,
    /// At each step, the class active a horizon later.
    Anticipate,
    /// The embedding a horizon later (no labels needed); its error is the surprise.
    Forecast,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Anticipate => "anticipate",
            Task::Forecast => "forecast",
        }
    }
}

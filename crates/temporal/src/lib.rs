//! The recurrent half of the product: sequences of frame features `[batch, time, features]` in,
//! "what is happening", "what happens next" and "how unexpected was this" out.
//!
//! - [`TemporalConfig`] / [`TemporalModel`]: input normalisation, a linear projection, stacked
//!   LSTM, GRU or plain tanh RNN layers, and one head ([`Head`]).
//! - [`TemporalModel::forward`] takes and returns the recurrent [`State`], so a video of any
//!   length runs chunk by chunk in constant memory with the same outputs as one pass.
//! - [`train`]: one training loop for the three heads (AdamW, clipping, cosine schedule, early
//!   stopping, a checkpoint per epoch); [`baseline`]: the order-blind comparison.
//! - [`metrics`]: confusion matrix, accuracy, per-class precision/recall/F1, macro-F1.

pub mod baseline;
mod checkpoint;
pub mod metrics;
mod model;
pub mod store;
pub mod train;

pub use checkpoint::CheckpointError;
pub use model::{CellKind, Head, LayerState, State, TemporalConfig, TemporalModel};
pub use train::{Sequence, Target};

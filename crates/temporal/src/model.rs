use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, tanh};
use serde::{Deserialize, Serialize};

/// The recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    /// Long short-term memory (Hochreiter & Schmidhuber 1997).
    Lstm,
    /// Gated recurrent unit (Cho et al. 2014).
    Gru,
    /// Plain tanh recurrence, the cell whose vanishing gradients LSTM and GRU were made to fix.
    Rnn,
}

/// What the model predicts at every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum Head {
    /// Class logits of what is happening; a clip's label is read at its last step.
    Classify { classes: usize },
    /// Class logits of what will be happening `horizon` steps later.
    Anticipate { classes: usize, horizon: usize },
    /// The (normalised) embedding `ahead` steps later, predicted as a change from the current
    /// one; its error once that step arrives is the surprise score.
    Forecast { ahead: usize },
}

/// The nonlinearity after the input projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// None: the projection is linear (models written before the field existed).
    Identity,
    /// `max(0, x)`: the projection becomes a learned feature layer of its own.
    Relu,
}

/// Configuration of a [`TemporalModel`].
#[derive(Config, Debug)]
pub struct TemporalConfig {
    /// The recurrent cell.
    pub cell: CellKind,
    /// The prediction head.
    pub head: Head,
    /// Width of the input features (1280 for EfficientNet-Lite0).
    #[config(default = 1280)]
    pub input_dim: usize,
    /// Width of the linear projection in front of the recurrent layers.
    #[config(default = 256)]
    pub projection: usize,
    /// The nonlinearity after the projection.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Hidden state size of each recurrent layer.
    #[config(default = 256)]
    pub hidden: usize,
    /// Number of stacked recurrent layers.
    #[config(default = 1)]
    pub layers: usize,
    /// Dropout on the input features and between recurrent layers (training only).
    #[config(default = 0.3)]
    pub dropout: f64,
    /// Dropout after the projection as well (training only).
    #[config(default = false)]
    pub projection_dropout: bool,
}

impl TemporalConfig {
    /// Width of the head's output at each step.
    pub fn output_dim(&self) -> usize {
        match self.head {
            Head::Classify { classes } | Head::Anticipate { classes, .. } => classes,
            Head::Forecast { .. } => self.input_dim,
        }
    }

    /// A fresh model; its input normalisation is the identity until
    /// [`TemporalModel::with_normalization`] sets the training set's statistics.
    pub fn init(&self, device: &Device) -> TemporalModel {
        let layers = (0..self.layers.max(1))
            .map(|i| {
                let input = if i == 0 { self.projection } else { self.hidden };
                Recurrent::new(self.cell, input, self.hidden, device)
            })
            .collect();
        TemporalModel {
            config: self.clone(),
            mean: Param::from_tensor(Tensor::zeros([self.input_dim], device))
                .set_require_grad(false),
            std: Param::from_tensor(Tensor::ones([self.input_dim], device)).set_require_grad(false),
            projection: LinearConfig::new(self.input_dim, self.projection).init(device),
            layers,
            dropout: DropoutConfig::new(self.dropout).init(),
            head: match self.head {
                // The forecast is a change from the current embedding: starting the head at
                // zero starts the model at the persistence baseline, and training moves it
                // away only as far as that lowers the error.
                Head::Forecast { .. } => LinearConfig::new(self.hidden, self.output_dim())
                    .with_initializer(Initializer::Zeros)
                    .init(device),
                _ => LinearConfig::new(self.hidden, self.output_dim()).init(device),
            },
        }
    }
}

/// One recurrent layer, gates fused: every step's input transform for all gates is one
/// matrix product over the whole sequence, and each step adds one product of the hidden state
/// with all gates' recurrent weights (burn's `Lstm`/`Gru` run two small products per gate per
/// step). The layout is PyTorch's: gate order LSTM `[input, forget, cell, output]`, GRU
/// `[reset, update, new]` with the reset applied after the recurrent product, so
/// `input.weight`/`recurrent.weight` transposed are `weight_ih_l0`/`weight_hh_l0` of
/// `nn.LSTM`/`nn.GRU`/`nn.RNN` and the biases are `bias_ih_l0`/`bias_hh_l0`.
#[derive(Module, Debug)]
struct Recurrent {
    /// `[in, gates x hidden]`, with the biases.
    input: Linear,
    /// `[hidden, gates x hidden]`, with the biases (the GRU's new gate needs its own).
    recurrent: Linear,
    #[module(skip)]
    cell: CellKind,
    #[module(skip)]
    hidden: usize,
}

impl Recurrent {
    fn new(cell: CellKind, input: usize, hidden: usize, device: &Device) -> Self {
        let gates = match cell {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
            CellKind::Rnn => 1,
        };
        // Uniform(-1/sqrt(hidden), 1/sqrt(hidden)) for every weight, as PyTorch initialises
        // its recurrent layers.
        let bound = 1.0 / (hidden as f64).sqrt();
        let init = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        let linear = |from: usize| {
            LinearConfig::new(from, gates * hidden)
                .with_initializer(init.clone())
                .init(device)
        };
        Self {
            input: linear(input),
            recurrent: linear(hidden),
            cell,
            hidden,
        }
    }

    /// `[batch, time, in]` and the state before to `[batch, time, hidden]` and the state after.
    fn forward(&self, x: Tensor<3>, state: Option<LayerState>) -> (Tensor<3>, LayerState) {
        let [batch, time, _] = x.dims();
        let h = self.hidden;
        let device = x.device();
        let inputs = self.input.forward(x);
        let gates = inputs.dims()[2];
        let (mut hidden, mut cell) = match state {
            Some(s) => {
                let cell = s.cell.unwrap_or_else(|| s.hidden.zeros_like());
                (s.hidden, cell)
            }
            None => (
                Tensor::zeros([batch, h], &device),
                Tensor::zeros([batch, h], &device),
            ),
        };
        let mut outputs = Vec::with_capacity(time);
        for t in 0..time {
            let x_t = inputs.clone().narrow(1, t, 1).reshape([batch, gates]);
            let h_t = self.recurrent.forward(hidden.clone());
            match self.cell {
                CellKind::Lstm => {
                    let g = x_t + h_t;
                    let i = sigmoid(g.clone().narrow(1, 0, h));
                    let f = sigmoid(g.clone().narrow(1, h, h));
                    let c = tanh(g.clone().narrow(1, 2 * h, h));
                    let o = sigmoid(g.narrow(1, 3 * h, h));
                    cell = f * cell + i * c;
                    hidden = o * tanh(cell.clone());
                }
                CellKind::Gru => {
                    let r = sigmoid(x_t.clone().narrow(1, 0, h) + h_t.clone().narrow(1, 0, h));
                    let z = sigmoid(x_t.clone().narrow(1, h, h) + h_t.clone().narrow(1, h, h));
                    let n = tanh(x_t.narrow(1, 2 * h, h) + r * h_t.narrow(1, 2 * h, h));
                    hidden = (z.ones_like() - z.clone()) * n + z * hidden;
                }
                CellKind::Rnn => hidden = tanh(x_t + h_t),
            }
            outputs.push(hidden.clone());
        }
        let cell = (self.cell == CellKind::Lstm).then_some(cell);
        (Tensor::stack(outputs, 1), LayerState { hidden, cell })
    }
}

/// One layer's recurrent state, `[batch, hidden]` (and the LSTM's cell state).
#[derive(Debug, Clone)]
pub struct LayerState {
    pub hidden: Tensor<2>,
    pub cell: Option<Tensor<2>>,
}

/// The state of every layer: what carries a video from one chunk to the next.
#[derive(Debug, Clone)]
pub struct State(pub Vec<LayerState>);

/// Normalisation, projection, recurrent layers and head. See [`TemporalConfig`].
#[derive(Module, Debug)]
pub struct TemporalModel {
    #[module(skip)]
    config: TemporalConfig,
    mean: Param<Tensor<1>>,
    std: Param<Tensor<1>>,
    projection: Linear,
    layers: Vec<Recurrent>,
    dropout: Dropout,
    head: Linear,
}

impl TemporalModel {
    /// The settings the model was built from.
    pub fn config(&self) -> TemporalConfig {
        self.config.clone()
    }

    /// Sets the per-feature mean and standard deviation inputs are normalised with (the
    /// training set's), part of the saved model.
    pub fn with_normalization(mut self, mean: Tensor<1>, std: Tensor<1>) -> Self {
        self.mean = Param::from_tensor(mean).set_require_grad(false);
        self.std = Param::from_tensor(std.clamp_min(1e-6)).set_require_grad(false);
        self
    }

    /// Features `[batch, time, input_dim]` normalised as in training.
    pub fn normalize(&self, features: Tensor<3>) -> Tensor<3> {
        let d = self.mean.val().dims()[0];
        let mean = self.mean.val().reshape([1, 1, d]);
        let std = self.std.val().reshape([1, 1, d]);
        (features - mean) / std
    }

    /// Normalised features back to raw ones (the inverse of [`normalize`](Self::normalize)).
    pub fn denormalize(&self, normalized: Tensor<3>) -> Tensor<3> {
        let d = self.mean.val().dims()[0];
        normalized * self.std.val().reshape([1, 1, d]) + self.mean.val().reshape([1, 1, d])
    }

    /// Forecast head: the raw embedding expected `ahead` steps after each step of `features`
    /// `[batch, time, input_dim]` (the current one plus the predicted change), and the state.
    pub fn forecast(&self, features: Tensor<3>, state: Option<State>) -> (Tensor<3>, State) {
        let normalized = self.normalize(features.clone());
        let (change, state) = self.forward(features, state);
        (self.denormalize(normalized + change), state)
    }

    /// Surprise per row: the mean squared difference, in normalised units, between the
    /// embedding that arrived and the one forecast for it. `[n, input_dim]` twice to `[n]`.
    pub fn surprise(&self, arrived: Tensor<2>, forecast: Tensor<2>) -> Tensor<1> {
        let [n, d] = arrived.dims();
        let std = self.std.val().reshape([1, d]);
        ((arrived - forecast) / std)
            .square()
            .mean_dim(1)
            .reshape([n])
    }

    /// Raw features `[batch, time, input_dim]` (and the state after a previous chunk) to the
    /// head's outputs at every step `[batch, time, output_dim]` and the state after the last
    /// step. Feeding a sequence in chunks, passing the state along, gives the same outputs as
    /// one call on the whole.
    pub fn forward(&self, features: Tensor<3>, state: Option<State>) -> (Tensor<3>, State) {
        // Dropout on the normalised input features: with a few hundred clips, 1280-d features
        // are easy to memorise.
        let x = self.dropout.forward(self.normalize(features));
        let mut x = self.projection.forward(x);
        if self.config.activation == Activation::Relu {
            x = relu(x);
        }
        if self.config.projection_dropout {
            x = self.dropout.forward(x);
        }
        let mut states = state.map(|s| s.0.into_iter());
        let mut next = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            if i > 0 {
                x = self.dropout.forward(x);
            }
            let (out, s) = layer.forward(x, states.as_mut().and_then(Iterator::next));
            x = out;
            next.push(s);
        }
        (self.head.forward(x), State(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cell: CellKind) -> TemporalConfig {
        config_with(cell, Head::Classify { classes: 3 })
    }

    fn config_with(cell: CellKind, head: Head) -> TemporalConfig {
        TemporalConfig::new(cell, head)
            .with_input_dim(8)
            .with_projection(6)
            .with_hidden(5)
            .with_layers(2)
    }

    #[test]
    fn chunked_streaming_equals_one_pass_for_every_cell() {
        let device = Device::flex();
        for cell in [CellKind::Lstm, CellKind::Gru, CellKind::Rnn] {
            let model = config(cell).init(&device);
            let x = Tensor::<3>::random([2, 7, 8], burn::tensor::Distribution::Default, &device);
            let (whole, _) = model.forward(x.clone(), None);
            let (a, state) = model.forward(x.clone().slice([0..2, 0..3, 0..8]), None);
            let (b, state) = model.forward(x.clone().slice([0..2, 3..4, 0..8]), Some(state));
            let (c, _) = model.forward(x.slice([0..2, 4..7, 0..8]), Some(state));
            let chunked = Tensor::cat(vec![a, b, c], 1);
            let diff = (whole - chunked).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-5, "{cell:?}: chunked differs by {diff}");
        }
    }

    #[test]
    fn forecast_of_a_fresh_forecaster_is_persistence() {
        // The forecast head starts at zero change: the expected embedding is the current one,
        // and the surprise of a step is its distance from the step `ahead` before.
        let device = Device::flex();
        let model = config_with(CellKind::Lstm, Head::Forecast { ahead: 1 })
            .init(&device)
            .with_normalization(
                Tensor::from_floats([0.5; 8], &device),
                Tensor::from_floats([2.0; 8], &device),
            );
        let x = Tensor::<3>::random([1, 3, 8], burn::tensor::Distribution::Default, &device);
        let (forecast, _) = model.forecast(x.clone(), None);
        let diff = (forecast.clone() - x.clone())
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 1e-5, "{diff}");
        let arrived = x.clone().slice([0..1, 1..2, 0..8]).reshape([1, 8]);
        let expected = forecast.slice([0..1, 0..1, 0..8]).reshape([1, 8]);
        let surprise = model
            .surprise(arrived.clone(), expected.clone())
            .into_scalar::<f32>();
        let by_hand = ((arrived - expected) / 2.0)
            .square()
            .mean()
            .into_scalar::<f32>();
        assert!((surprise - by_hand).abs() < 1e-6);
    }

    #[test]
    fn output_width_follows_the_head() {
        let device = Device::flex();
        let x = Tensor::<3>::zeros([1, 4, 8], &device);
        let forecast = config_with(CellKind::Gru, Head::Forecast { ahead: 1 });
        assert_eq!(
            forecast.init(&device).forward(x.clone(), None).0.dims(),
            [1, 4, 8]
        );
        assert_eq!(
            config(CellKind::Lstm)
                .init(&device)
                .forward(x, None)
                .0
                .dims(),
            [1, 4, 3]
        );
    }
}

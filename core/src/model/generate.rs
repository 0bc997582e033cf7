//! [`Generator`]: streaming generation as an iterator of token ids.

use core::marker::PhantomData;

use super::error::ModelError;
use super::forward::{Logits, Model, RunState};
use crate::parallel::{Join, SerialJoin};
use crate::sample::{SampleError, Sampler};

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A stop token (EOS/EOT) was sampled; it is not yielded.
    StopToken(u32),
    /// The requested number of new tokens was produced.
    MaxTokens,
    /// An error was yielded.
    Error,
}

/// Generates tokens after a prompt, one per [`Iterator::next`]:
/// the first call evaluates the whole prompt (prefill), each later call
/// feeds the previous token (decode). Yields `Ok(token)` for every generated
/// token, stops (returns `None`) at a stop token or after `max_new` tokens,
/// and yields one `Err` (then `None`) on failure, e.g.
/// [`ModelError::ContextFull`] when the KV cache has no room for the next
/// position.
///
/// The prompt and generated tokens are passed to the sampler's history (for
/// the repetition penalty).
///
/// `J` splits the matmuls over threads ([`SerialJoin`]: none); the tokens
/// are the same for any `J`.
pub struct Generator<'g, 'a, J: Join = SerialJoin> {
    model: &'g Model<'a>,
    state: &'g mut RunState,
    sampler: &'g mut Sampler,
    prompt: &'g [u32],
    stop: &'g [u32],
    /// Next position to evaluate.
    pos: usize,
    /// The token to feed next (`None` before the prompt is evaluated).
    pending: Option<u32>,
    generated: usize,
    max_new: usize,
    finished: Option<StopReason>,
    join: PhantomData<J>,
}

impl<'g, 'a> Generator<'g, 'a, SerialJoin> {
    /// A generator that starts at position 0 of `state` (its cache content is
    /// overwritten) with `prompt` (non-empty), producing at most `max_new`
    /// tokens and stopping at any id in `stop`.
    pub fn new(
        model: &'g Model<'a>,
        state: &'g mut RunState,
        sampler: &'g mut Sampler,
        prompt: &'g [u32],
        max_new: usize,
        stop: &'g [u32],
    ) -> Self {
        Self::new_in(model, state, sampler, prompt, max_new, stop)
    }
}

impl<'g, 'a, J: Join> Generator<'g, 'a, J> {
    /// [`Generator::new`] with the matmuls split over threads through `J`.
    pub fn new_in(
        model: &'g Model<'a>,
        state: &'g mut RunState,
        sampler: &'g mut Sampler,
        prompt: &'g [u32],
        max_new: usize,
        stop: &'g [u32],
    ) -> Self {
        Self {
            model,
            state,
            sampler,
            prompt,
            stop,
            pos: 0,
            pending: None,
            generated: 0,
            max_new,
            finished: None,
            join: PhantomData,
        }
    }

    /// Why generation stopped (`None` while it can continue).
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.finished
    }

    /// Positions evaluated so far (prompt plus fed-back tokens).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Tokens yielded so far.
    pub fn generated(&self) -> usize {
        self.generated
    }

    fn step(&mut self) -> Result<u32, ModelError> {
        let logits = match self.pending {
            None => {
                if self.prompt.is_empty() {
                    return Err(ModelError::EmptyInput);
                }
                let l = self
                    .model
                    .forward_in::<J>(self.state, self.prompt, 0, Logits::Last)?;
                self.pos = self.prompt.len();
                for &t in self.prompt {
                    self.sampler.accept(t);
                }
                l
            }
            Some(t) => {
                let l = self
                    .model
                    .forward_in::<J>(self.state, &[t], self.pos, Logits::Last)?;
                self.pos += 1;
                l
            }
        };
        let token = self.sampler.sample(logits).map_err(|e| match e {
            SampleError::EmptyLogits | SampleError::VocabTooLarge { .. } => {
                ModelError::BadRunState {
                    reason: "the model produced no usable logits",
                }
            }
            SampleError::AllocFailed { len } => ModelError::AllocFailed {
                bytes: len.saturating_mul(12),
            },
        })?;
        self.sampler.accept(token);
        Ok(token)
    }
}

impl<J: Join> Iterator for Generator<'_, '_, J> {
    type Item = Result<u32, ModelError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished.is_some() {
            return None;
        }
        if self.generated >= self.max_new {
            self.finished = Some(StopReason::MaxTokens);
            return None;
        }
        match self.step() {
            Ok(t) if self.stop.contains(&t) => {
                self.finished = Some(StopReason::StopToken(t));
                None
            }
            Ok(t) => {
                self.generated += 1;
                self.pending = Some(t);
                Some(Ok(t))
            }
            Err(e) => {
                self.finished = Some(StopReason::Error);
                Some(Err(e))
            }
        }
    }
}

//! GGUF v2/v3: a hardened zero-copy reader ([`Gguf`]) and a writer
//! ([`GgufWriter`]).
//!
//! Checks the reader makes (DESIGN.md §3): magic and version; every read
//! bounds-checked; counts (metadata, tensors, array lengths) capped and
//! checked against the remaining bytes before any allocation; string
//! lengths capped; keys and strings valid UTF-8; bools 0/1; no nested
//! arrays; duplicate keys and tensor names rejected through hash sets
//! (O(n)); `general.alignment` a power of two up to [`MAX_ALIGNMENT`];
//! tensor n_dims <= 4; element counts and byte sizes computed with checked
//! arithmetic from the type table; ne0 a multiple of the block size; type
//! ids 36/38/39 resolved from the architecture; tensor offsets aligned,
//! data inside the file and non-overlapping.

mod error;
mod peek;
mod reader;
mod types;
mod value;
mod writer;

pub use error::{GgufError, KeyContext};
pub use peek::{HeaderPeek, PeekError, peek_header};
pub use reader::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, Gguf, MAX_ALIGNMENT, MAX_ARRAY_LEN, MAX_DIMS, MAX_KV_COUNT,
    MAX_STRING_LEN, MAX_TENSOR_COUNT, MAX_TENSOR_NAME, TensorInfo,
};
pub use types::{
    GgmlType, I2S_BLOCK, I2S_TAIL_BYTES, I2S_TYPE_ID, ShapeError, TL1_TYPE_ID, TL2_OR_MXFP4_TYPE_ID,
};
pub use value::{Array, OwnedArray, OwnedValue, StrIter, Value, ValueType};
pub use writer::{GgufWriter, TensorSpec};

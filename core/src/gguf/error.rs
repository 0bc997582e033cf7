//! Errors of the GGUF reader and writer. Every variant carries the
//! offending values so the message tells the user what is wrong and where.

use alloc::string::String;
use core::fmt;

/// Which metadata entry a malformed count, string or truncation belongs
/// to, where the reader knows it. Appended to the message, so a user can
/// find the damage with a hex dump or compare it with an intact copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyContext {
    /// Not in the metadata (header counts, tensor infos), or the first key.
    None,
    /// Inside the value of this key.
    ValueOf(String),
    /// Inside the key of the entry after this one (the key being read is
    /// the damaged one, so its name is unknown).
    KeyAfter(String),
}

impl fmt::Display for KeyContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => Ok(()),
            Self::ValueOf(key) => write!(f, " (in the value of metadata key '{key}')"),
            Self::KeyAfter(key) => write!(
                f,
                " (in the key of the metadata entry after '{key}': that value may be damaged)"
            ),
        }
    }
}

/// Everything that can be wrong with a GGUF file (or with a request to
/// read a value of the wrong type from a valid one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GgufError {
    /// The file ends before a structure that must be there.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Byte offset where it starts.
        offset: u64,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
        /// The metadata entry, where known.
        context: KeyContext,
    },
    /// The first four bytes are not `GGUF`.
    BadMagic { found: [u8; 4] },
    /// Only versions 2 and 3 are defined (1 used 32-bit counts and is obsolete).
    UnsupportedVersion { version: u32 },
    /// A count is above the reader's cap.
    TooMany {
        what: &'static str,
        count: u64,
        max: u64,
        /// The metadata entry, where known.
        context: KeyContext,
    },
    /// A count promises more entries than the remaining bytes could hold.
    CountExceedsData {
        what: &'static str,
        count: u64,
        remaining: u64,
        /// The metadata entry, where known.
        context: KeyContext,
    },
    /// A string's declared length is above the cap.
    StringTooLong {
        /// What the string is (metadata key, metadata string, tensor name...).
        what: &'static str,
        offset: u64,
        len: u64,
        max: u64,
        /// The metadata entry, where known.
        context: KeyContext,
    },
    /// A string that must be UTF-8 is not.
    InvalidUtf8 {
        what: &'static str,
        offset: u64,
        /// The metadata entry, where known.
        context: KeyContext,
    },
    /// A metadata value type id outside 0..=12.
    UnknownValueType { key: String, type_id: u32 },
    /// Arrays of arrays are not used by any model format and are refused.
    NestedArray { key: String },
    /// A bool must be stored as 0 or 1.
    InvalidBool { key: String, offset: u64, value: u8 },
    /// Two metadata entries share a key.
    DuplicateKey { key: String },
    /// Two tensors share a name.
    DuplicateTensor { name: String },
    /// `general.alignment` is not a power of two in `1..=max`.
    BadAlignment { value: u64, max: u64 },
    /// A tensor name is empty or longer than the cap.
    BadTensorName { offset: u64, len: u64, max: u64 },
    /// A tensor has more than 4 dimensions.
    TooManyDims { tensor: String, n_dims: u32 },
    /// A tensor's element count or byte size overflows 64 bits.
    SizeOverflow { tensor: String },
    /// A tensor type id this reader has no layout for.
    UnknownTensorType { tensor: String, type_id: u32 },
    /// A type id whose meaning the file does not make clear, or a layout
    /// that exists only for one build of another program.
    UnsupportedTensorType {
        tensor: String,
        type_id: u32,
        reason: &'static str,
    },
    /// The first dimension is not a multiple of the type's block size.
    BadShape {
        tensor: String,
        type_name: &'static str,
        ne0: u64,
        block: u64,
    },
    /// A tensor's offset is not a multiple of the file's alignment.
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    /// A tensor's data lies (partly) outside the file.
    TensorOutOfBounds {
        tensor: String,
        offset: u64,
        size: u64,
        data_len: u64,
    },
    /// Two tensors' data ranges overlap.
    TensorOverlap { first: String, second: String },
    /// A required key is missing.
    MissingKey { key: String },
    /// A key holds a value of another type than the one asked for.
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    /// The writer was asked for something it cannot encode.
    Unencodable { what: String },
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GgufError::*;
        match self {
            Truncated {
                what,
                offset,
                needed,
                available,
                context,
            } => write!(
                f,
                "file truncated: {what} at offset {offset} needs {needed} bytes but only {available} remain{context}"
            ),
            BadMagic { found } => write!(
                f,
                "not a GGUF file: magic is {:02x} {:02x} {:02x} {:02x}, expected \"GGUF\"",
                found[0], found[1], found[2], found[3]
            ),
            UnsupportedVersion { version } => write!(
                f,
                "unsupported GGUF version {version} (supported: 2, 3){}",
                if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
                    "; the file looks big-endian, which is not supported"
                } else {
                    ""
                }
            ),
            TooMany {
                what,
                count,
                max,
                context,
            } => write!(f, "{what} is {count}, above the limit of {max}{context}"),
            CountExceedsData {
                what,
                count,
                remaining,
                context,
            } => write!(
                f,
                "{what} is {count}, but only {remaining} bytes remain in the file{context}"
            ),
            StringTooLong {
                what,
                offset,
                len,
                max,
                context,
            } => write!(
                f,
                "{what} at offset {offset} declares length {len}, above the limit of {max}{context}"
            ),
            InvalidUtf8 {
                what,
                offset,
                context,
            } => write!(f, "{what} at offset {offset} is not valid UTF-8{context}"),
            UnknownValueType { key, type_id } => {
                write!(f, "metadata key '{key}' has unknown value type {type_id}")
            }
            NestedArray { key } => write!(
                f,
                "metadata key '{key}' is an array of arrays, which is not supported"
            ),
            InvalidBool { key, offset, value } => write!(
                f,
                "metadata key '{key}': bool at offset {offset} is {value}, must be 0 or 1"
            ),
            DuplicateKey { key } => write!(f, "duplicate metadata key '{key}'"),
            DuplicateTensor { name } => write!(f, "duplicate tensor name '{name}'"),
            BadAlignment { value, max } => write!(
                f,
                "general.alignment is {value}; it must be a power of two between 1 and {max}"
            ),
            BadTensorName { offset, len, max } => write!(
                f,
                "tensor name at offset {offset} has length {len}; it must be 1..={max} bytes"
            ),
            TooManyDims { tensor, n_dims } => write!(
                f,
                "tensor '{tensor}' has {n_dims} dimensions; at most 4 are allowed"
            ),
            SizeOverflow { tensor } => {
                write!(f, "tensor '{tensor}': element count or byte size overflows")
            }
            UnknownTensorType { tensor, type_id } => {
                write!(f, "tensor '{tensor}' has unknown ggml type id {type_id}")
            }
            UnsupportedTensorType {
                tensor,
                type_id,
                reason,
            } => write!(f, "tensor '{tensor}' has type id {type_id}: {reason}"),
            BadShape {
                tensor,
                type_name,
                ne0,
                block,
            } => write!(
                f,
                "tensor '{tensor}' of type {type_name}: first dimension {ne0} is not a multiple of the block size {block}"
            ),
            MisalignedTensor {
                tensor,
                offset,
                alignment,
            } => write!(
                f,
                "tensor '{tensor}': data offset {offset} is not a multiple of the alignment {alignment}"
            ),
            TensorOutOfBounds {
                tensor,
                offset,
                size,
                data_len,
            } => write!(
                f,
                "tensor '{tensor}': data at offset {offset} with size {size} lies outside the data section of {data_len} bytes"
            ),
            TensorOverlap { first, second } => {
                write!(f, "tensors '{first}' and '{second}' overlap")
            }
            MissingKey { key } => write!(f, "missing metadata key '{key}'"),
            WrongType {
                key,
                expected,
                found,
            } => write!(f, "metadata key '{key}' is {found}, expected {expected}"),
            Unencodable { what } => write!(f, "cannot write GGUF: {what}"),
        }
    }
}

impl core::error::Error for GgufError {}

impl GgufError {
    /// Names the metadata entry in an error that carries only an offset
    /// (the reader's low-level reads do not know the key); an error that
    /// already has a context, or names its key otherwise, is unchanged.
    pub(crate) fn in_entry(mut self, entry: impl FnOnce() -> KeyContext) -> Self {
        use GgufError::*;
        match &mut self {
            Truncated { context, .. }
            | TooMany { context, .. }
            | CountExceedsData { context, .. }
            | StringTooLong { context, .. }
            | InvalidUtf8 { context, .. }
                if *context == KeyContext::None =>
            {
                *context = entry();
            }
            _ => {}
        }
        self
    }
}

//! Quantization formats (I2_S, TQ1_0, TQ2_0, Q8_0, F16, BF16, F32) and their
//! portable dot-product kernels.

//! `bitnet-std`: the std side of bitnet (file loading, threads, CLI).

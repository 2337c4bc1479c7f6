//! Circuits: polynomial evaluation and linear transformations.

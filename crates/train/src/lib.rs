//! Encrypted training of the classification layer (the paper's SigmoidNAGQG).

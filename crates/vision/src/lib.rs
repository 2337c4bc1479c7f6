//! Datasets and pretrained backbones for client-side feature extraction.

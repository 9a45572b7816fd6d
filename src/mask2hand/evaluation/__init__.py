"""Evaluation: the FreiHAND metrics (`metrics`), a network on a dataset with the paper's tables
(`network`), and test-time fitting on a dataset (`fitting`)."""

"""Test scenes and dense reference implementations, used only by the tests and benchmarks."""

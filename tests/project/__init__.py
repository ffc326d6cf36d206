"""Tests of the project as a whole: import layering, README, examples, benchmarks, the command."""

"""Package-wide promises of docs/RELIABILITY.md: determinism, hostile files, fuzzing."""

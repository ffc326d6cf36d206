"""fastnn's test suite: one folder per part of the package (kernels, nn, sklearn, cuda) and two for
what spans it (project: the repository, command and layering; reliability: the promises of
docs/RELIABILITY.md). A package, so that test files in different folders may share a name; the
shared helpers import as ``tests.gradients`` and ``tests.naive``."""

"""Test support: fixtures-as-code shared by the tests and the benchmarks (synthetic data, a
sandbox serving home, sample landing files, a throwaway PostgreSQL cluster)."""

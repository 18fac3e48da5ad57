"""Reference implementations the tests check production code against (never imported by it)."""

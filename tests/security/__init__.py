"""Adversarial tests: each attack of the security review (issue 12) on the real path."""

"""Reliability and security checks (issue 11): protocol fuzzing, hostile clients, file safety."""

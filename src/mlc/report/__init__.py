"""Reports: one versioned JSON envelope for optimize, profile and bench results."""

from mlc.report.envelope import SCHEMA, envelope, hardware_summary

__all__ = ["SCHEMA", "envelope", "hardware_summary"]

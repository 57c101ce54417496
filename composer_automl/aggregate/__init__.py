"""Aggregation: from a finished search's trial log to one consensus pattern."""

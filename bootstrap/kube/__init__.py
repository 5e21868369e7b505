"""A running cluster, through the official kubernetes client."""

"""The host's own REST resources."""

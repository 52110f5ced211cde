"""The service controller: starts services as detached jobs, reuses live ones, stops them all."""

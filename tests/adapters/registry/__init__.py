"""Registry adapter tests, against real docker-registry processes on loopback."""

"""The HTTP layer shared by every adapter: clients, auth, rate limits, retries."""

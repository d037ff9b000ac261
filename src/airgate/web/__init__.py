"""What airgate serves at an environment's WebServerHostname (MWAA's CLI and web login)."""

"""Request authentication and authorization: who sent an API call, and what it may do."""

"""Who may reach the server and what they may do: browser guards, authentication, access, quotas, outbound URLs."""

"""Login with WeChat, token issue/rotation/revocation, and access-token checks."""

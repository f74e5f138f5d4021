"""The bank's staff: identities (``directory``), console logins (``login``, ``sessions``), what each
role may do (``permissions``) and what the console shows (``dashboard``)."""

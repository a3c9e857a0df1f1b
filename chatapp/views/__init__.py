"""HTTP endpoints: thin views that validate, hand off, and answer."""

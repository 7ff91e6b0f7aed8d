"""Commune incident tickets and security alerts (convention art. 6.1; Toodego annex § 6.1.a and § 8)."""

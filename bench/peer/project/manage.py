#!/usr/bin/env python
"""Django entry point of the peer benchmark project (django-helpdesk); run with bench/peer/.venv/bin/python."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
